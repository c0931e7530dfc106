import Keyv from 'keyv';

/**
 * A keyv store: in memory, or a sqlite file (persistent across restarts). The sqlite driver is
 * a native module loaded only when asked for, so the default set-up does not pay for it.
 */
export async function openKeyv<T>(kind: 'memory' | 'sqlite', file: string, table: string, namespace: string): Promise<Keyv<T>> {
  if (kind === 'memory') return new Keyv<T>({ namespace });
  const { default: KeyvSqlite } = await import('@keyv/sqlite');
  return new Keyv<T>({ store: new KeyvSqlite({ uri: 'sqlite://' + file, table, busyTimeout: 5000 }), namespace });
}
