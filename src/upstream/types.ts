import type { Readable } from 'node:stream';

// The contract every backend fulfils (docs/architecture.md, Contracts).
//
// Paths given to an Upstream are *canonical DAV paths*: already percent-decoded,
// starting with "/", segments joined by single "/", no trailing slash (the root is "/"),
// no "." or ".." segment, no NUL (see src/davpath.ts, which produces them). A backend
// must still confine them to its own root and refuse anything that would leave it:
// the canonical form is a promise of the caller, confinement is the backend's duty.
//
// Errors: backends throw only classes from src/errors.ts (NotFoundError for a
// missing path, ConflictError for a missing parent, ...), never raw system or SDK errors.

export type EntryKind = 'file' | 'dir';

export interface Entry {
  /** Last path segment ("" for the root). */
  readonly name: string;
  /** Canonical DAV path of this entry. */
  readonly path: string;
  readonly kind: EntryKind;
  /** Bytes; 0 for directories. */
  readonly size: number;
  readonly mtimeMs: number;
  /** Creation time where the backend knows it, else mtimeMs. */
  readonly birthtimeMs: number;
  /**
   * Opaque string that changes whenever the content changes (fs: inode+size+mtime,
   * S3: the ETag). The cache compares it to decide whether blocks are still valid.
   */
  readonly validator: string;
}

export interface Capabilities {
  /** copy() is done by the backend without streaming the data through us. */
  readonly serverSideCopy: boolean;
  /** quota() answers. */
  readonly quota: boolean;
  /** setMtime() is supported. */
  readonly setMtime: boolean;
}

/**
 * Who an operation is for. Backends that act with the caller's own credentials (WebDAV with
 * pass-through auth) use `authorization`; the others ignore it. Trailing and optional in
 * every method, so a backend that does not care simply omits the parameter.
 */
export interface CallContext {
  /** The client's Authorization header, forwarded as is. */
  readonly authorization?: string;
}

export interface Quota {
  readonly availableBytes: number;
  readonly usedBytes: number;
}

export interface Upstream {
  /** Stable identifier of this store (part of every cache key), e.g. "fs:/srv/data". */
  readonly id: string;
  readonly capabilities: Capabilities;

  /** Metadata of one path. NotFoundError when absent. */
  stat(path: string, ctx?: CallContext): Promise<Entry>;

  /**
   * Children of a directory, streamed: a backend never reads a whole huge directory into
   * one array before yielding the first entry. Order is unspecified. Temporary files of
   * in-progress writes are never listed. NotFoundError / NotADirectoryError.
   */
  list(path: string, ctx?: CallContext): AsyncIterable<Entry>;

  /**
   * Up to `length` bytes at `offset` (fewer only at end of file). When `expectValidator`
   * is given and the object no longer has it, throws PreconditionFailedError instead of
   * returning bytes of another version. With a `sink`, the bytes are written into
   * `sink.buffer` as they arrive (only after the version was checked) and announced with
   * `progress`, so a reader can stream them before the read ends; the result is then that buffer
   * (or a prefix of it).
   */
  read(path: string, offset: number, length: number, expectValidator?: string, ctx?: CallContext, sink?: ReadSink): Promise<Buffer>;

  /**
   * Store `body` at `path`, atomically: readers see the old object or the complete new
   * one, never a part. When `size` is given and the body is shorter or longer, or the body
   * errors (client abort), nothing is committed and IncompleteBodyError (or the body's
   * error) is thrown. ConflictError when the parent directory is missing.
   */
  write(path: string, body: Readable, size?: number, ctx?: CallContext): Promise<Entry>;

  /** Create one directory. ExistsError if present, ConflictError if the parent is missing. */
  mkdir(path: string, ctx?: CallContext): Promise<void>;

  /** Delete a file or a whole directory tree. NotFoundError when absent. */
  remove(path: string, ctx?: CallContext): Promise<void>;

  /**
   * Rename. With overwrite=false an existing destination gives ExistsError; with true it
   * is replaced (a directory destination is removed first). ConflictError when the
   * destination's parent is missing.
   */
  move(from: string, to: string, overwrite: boolean, ctx?: CallContext): Promise<void>;

  /** Copy a file or a tree (depth infinity) or only the collection itself (shallow). */
  copy(from: string, to: string, overwrite: boolean, shallow?: boolean, ctx?: CallContext): Promise<void>;

  /** Free/used space, where capabilities.quota. */
  quota?(path: string, ctx?: CallContext): Promise<Quota>;

  /** Set the modification time, where capabilities.setMtime. */
  setMtime?(path: string, mtimeMs: number, ctx?: CallContext): Promise<void>;

  close?(): Promise<void>;
}

/** Where a streaming read puts its bytes (see Upstream.read). */
export interface ReadSink {
  /** At least `length` bytes long. */
  readonly buffer: Buffer;
  /** Bytes [0, filled) of `buffer` are final. Called with growing values; a retried read may repeat them. */
  progress(filled: number): void;
  /** An attempt was given up (timed out) while its writes into `buffer` may still land: never reuse it. */
  abandon?(): void;
}
