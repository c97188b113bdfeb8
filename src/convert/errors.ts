/** A conversion failure that names the file at fault and what to do about it. */
export class ConvertError extends Error {
  override readonly name = 'ConvertError';
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`);
  }
}
