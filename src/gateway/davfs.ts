import { Readable } from 'node:stream';
import webdavServer from 'webdav-server';
import type { v2 as V2 } from 'webdav-server';
import type { CacheManager } from '../cachemgr/cachemgr.js';
import { canonicalPath } from '../davpath.js';
import { DavgateError } from '../errors.js';
import type { DavState } from './davstate.js';
import { etagOf } from './conditional.js';

const { v2 } = webdavServer;

// The webdav-server FileSystem that serves PROPPATCH. It answers from the
// cache manager (so it sees exactly what our own routes see) and hands out the managers of
// DavState (so dead properties have one home). The bulk data methods are not
// implemented: GET, PUT, PROPFIND and the namespace methods are our own routes.

type Cb<T> = (error?: Error, value?: T) => void;

function toDavError(err: unknown): Error {
  if (err instanceof DavgateError) {
    switch (err.code) {
      case 'DAVGATE_NOT_FOUND': return v2.Errors.ResourceNotFound;
      case 'DAVGATE_EXISTS': return v2.Errors.ResourceAlreadyExists;
      case 'DAVGATE_CONFLICT': return v2.Errors.IntermediateResourceMissing;
      case 'DAVGATE_FORBIDDEN_PATH': case 'DAVGATE_READ_ONLY': return v2.Errors.Forbidden;
      case 'DAVGATE_INSUFFICIENT_STORAGE': return v2.Errors.InsufficientStorage;
      default: break;
    }
  }
  return err instanceof Error ? err : new Error(String(err));
}

export class CacheFileSystem extends v2.FileSystem {
  readonly #cache: CacheManager;
  readonly #state: DavState;

  constructor(cache: CacheManager, state: DavState) {
    super(new v2.VirtualSerializer());
    this.#cache = cache;
    this.#state = state;
    this.doNotSerialize();
  }

  #run<T>(path: V2.Path, fn: (p: string) => Promise<T>, cb: Cb<T>): void {
    let p: string;
    try {
      p = canonicalPath(path.toString());
    } catch (err) {
      cb(toDavError(err));
      return;
    }
    fn(p).then((v) => cb(undefined, v), (err) => cb(toDavError(err)));
  }

  protected override _fastExistCheck(_ctx: V2.RequestContext, path: V2.Path, callback: (exists: boolean) => void): void {
    this.#run(path, (p) => this.#cache.getnode(p), (e) => callback(!e));
  }

  protected override _type(path: V2.Path, _ctx: V2.TypeInfo, callback: Cb<V2.ResourceType>): void {
    this.#run(path, async (p) => ((await this.#cache.getnode(p)).kind === 'dir' ? v2.ResourceType.Directory : v2.ResourceType.File), callback);
  }

  protected override _create(path: V2.Path, ctx: V2.CreateInfo, callback: (e?: Error) => void): void {
    this.#run(path, async (p) => {
      if (ctx.type.isDirectory) await this.#cache.mkdir(p);
      else await this.#cache.write(p, Readable.from([]), 0);
    }, (e) => callback(e));
  }

  protected override _size(path: V2.Path, _ctx: V2.SizeInfo, callback: Cb<number>): void {
    this.#run(path, async (p) => (await this.#cache.getnode(p)).size, callback);
  }

  protected override _etag(path: V2.Path, _ctx: V2.ETagInfo, callback: Cb<string>): void {
    this.#run(path, async (p) => etagOf(await this.#cache.getnode(p)), callback);
  }

  protected override _lastModifiedDate(path: V2.Path, _ctx: V2.LastModifiedDateInfo, callback: Cb<number>): void {
    this.#run(path, async (p) => (await this.#cache.getnode(p)).mtimeMs, callback);
  }

  protected override _creationDate(path: V2.Path, _ctx: V2.CreationDateInfo, callback: Cb<number>): void {
    this.#run(path, async (p) => (await this.#cache.getnode(p)).birthtimeMs, callback);
  }

  protected override _readDir(path: V2.Path, _ctx: V2.ReadDirInfo, callback: Cb<string[]>): void {
    this.#run(path, async (p) => {
      const names: string[] = [];
      for await (const n of this.#cache.list(p)) names.push(n.path.slice(n.path.lastIndexOf('/') + 1));
      return names;
    }, callback);
  }

  // Locks are enforced by our routes before a request reaches webdav-server (request.ts,
  // assertUnlocked); its own check compares user ids it cannot know, so it sees none.
  protected override _lockManager(_path: V2.Path, _ctx: V2.LockManagerInfo, callback: Cb<V2.ILockManager>): void {
    callback(undefined, new v2.LocalLockManager());
  }

  protected override _propertyManager(path: V2.Path, _ctx: V2.PropertyManagerInfo, callback: Cb<V2.IPropertyManager>): void {
    this.#run(path, async (p) => this.#state.propertyManager(p), callback);
  }
}
