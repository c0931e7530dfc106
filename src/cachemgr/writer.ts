import type { Readable } from 'node:stream';
import type { Quota, Upstream } from '../upstream/types.js';
import type { Metrics } from '../metrics.js';
import { parentOf } from '../davpath.js';
import type { BlockStore } from './blockstore.js';
import type { Node } from './nodetable.js';
import type { Identity } from './identity.js';
import type { NodeRecords } from './nodes.js';
import { metered } from './metered.js';

// Write-through: every change goes to the upstream first; once it committed, the cache is made
// coherent with it: the new node installed, the records, blocks and listings it outdated
// forgotten. A failed upstream call leaves the cache as it was.

export class WriteThrough {
  readonly upstream: Upstream;
  readonly #nodes: NodeRecords;
  readonly #blocks: BlockStore;
  readonly #metrics: Metrics | undefined;
  readonly #announce: (paths: readonly string[]) => Promise<void>;

  /** `announce`: tell the other gateways of the namespace (bus.ts); the write waits for it. */
  constructor(nodes: NodeRecords, blocks: BlockStore, metrics?: Metrics, announce: (paths: readonly string[]) => Promise<void> = async () => {}) {
    this.upstream = nodes.upstream;
    this.#nodes = nodes;
    this.#blocks = blocks;
    this.#metrics = metrics;
    this.#announce = announce;
  }

  /** The upstream commits atomically, then the new node is installed. */
  async write(path: string, body: Readable, size: number | undefined, identity: Identity): Promise<Node> {
    const entry = await metered(this.#metrics, 'write', () => this.upstream.write(path, body, { size }, identity));
    this.#nodes.forgetPath(parentOf(path), identity);
    const node = await this.#nodes.install(entry, identity);
    await this.#announce([path]);
    return node;
  }

  async mkdir(path: string, identity: Identity): Promise<void> {
    await metered(this.#metrics, 'mkdir', () => this.upstream.mkdir(path, identity));
    this.#nodes.forgetPath(path, identity);
    this.#nodes.forgetPath(parentOf(path), identity);
    await this.#announce([path]);
  }

  async remove(path: string, identity: Identity): Promise<void> {
    await metered(this.#metrics, 'remove', () => this.upstream.remove(path, identity));
    await this.#dropTree(path);
    this.#nodes.forgetPath(parentOf(path), identity);
    await this.#announce([path]);
  }

  async move(from: string, to: string, overwrite: boolean, identity: Identity): Promise<void> {
    await metered(this.#metrics, 'move', () => this.upstream.move(from, to, { overwrite }, identity));
    await this.#dropTree(to);
    this.#nodes.forgetListingsUnder(from);
    const table = this.#nodes.table;
    // Re-key every node we know under `from`: one directory rename each, no refetch.
    for (const node of table.under(from)) {
      const newPath = to + node.path.slice(from.length);
      const newKey = this.#nodes.keyOf(newPath, identity);
      await this.#blocks.rekey(node.key, newKey);
      table.forget(node.key);
      // Unconfirmed until the next getnode; same validator there means the blocks stay valid.
      table.remember({ ...node, key: newKey, path: newPath, checkedAt: 0 });
    }
    this.#nodes.forgetMissingUnder(to);
    this.#nodes.forgetPath(parentOf(from), identity);
    this.#nodes.forgetPath(parentOf(to), identity);
    await this.#announce([from, to]);
  }

  async copy(from: string, to: string, overwrite: boolean, shallow: boolean, identity: Identity): Promise<void> {
    await metered(this.#metrics, 'copy', () => this.upstream.copy(from, to, { overwrite, shallow }, identity));
    await this.#dropTree(to);
    this.#nodes.forgetMissingUnder(to);
    this.#nodes.forgetPath(parentOf(to), identity);
    await this.#announce([to]);
  }

  async quota(path: string, identity: Identity): Promise<Quota | undefined> {
    if (!this.upstream.quota) return undefined;
    return metered(this.#metrics, 'quota', () => this.upstream.quota!(path, identity));
  }

  async setMtime(path: string, mtimeMs: number, identity: Identity): Promise<void> {
    if (!this.upstream.setMtime) return;
    await metered(this.#metrics, 'setmtime', () => this.upstream.setMtime!(path, mtimeMs, identity));
    this.#nodes.forgetPath(path, identity);
    this.#nodes.forgetParentListing(path, identity); // it shows the mtime
    await this.#announce([path]);
  }

  /** `path` and everything under it is gone (or replaced): records, blocks and listings. */
  async #dropTree(path: string): Promise<void> {
    this.#nodes.forgetListingsUnder(path);
    for (const node of this.#nodes.table.under(path)) await this.#nodes.drop(node.key);
  }
}
