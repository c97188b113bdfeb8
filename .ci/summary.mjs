// Prints "N passed, N failed" from vitest's JSON report; fails when the report is missing or empty.
import { existsSync, readFileSync } from 'node:fs';

const file = process.argv[2];
if (!existsSync(file)) {
  console.log('0 passed, 0 failed');
  console.error(`no vitest report at ${file}: the test run did not complete`);
  process.exit(1);
}
const report = JSON.parse(readFileSync(file, 'utf8'));
const passed = report.numPassedTests ?? 0;
const failed = (report.numFailedTests ?? 0) + (report.numFailedTestSuites ?? 0);
console.log(`${passed} passed, ${failed} failed`);
if (report.numTotalTests === 0) {
  console.error('the run executed no test');
  process.exit(1);
}
process.exit(failed > 0 ? 1 : 0);
