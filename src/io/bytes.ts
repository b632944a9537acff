// Byte counts for people: messages and summaries that say how much memory or disk a thing needs.

/** Bytes in the largest binary unit that keeps the number >= 1 (GiB at most): "1.50 GiB", "12.00 MiB". */
export function formatBytes(bytes: number): string {
  const [unit, div] = bytes >= 2 ** 30 ? ['GiB', 2 ** 30] : bytes >= 2 ** 20 ? ['MiB', 2 ** 20] : ['KiB', 2 ** 10];
  return `${(bytes / div).toFixed(2)} ${unit}`;
}
