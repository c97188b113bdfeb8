import type { ReactNode } from 'react';
import './globals.css';

export const metadata = { title: 'Guarded chat (Qwen3Guard)' };

// System fonts only: the build stays offline (no next/font/google download).
export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
