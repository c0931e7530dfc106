// davgate's file manager: sorting, upload (file input and drag and drop, a progress bar per
// file, each file streamed with one PUT), new folder, rename and delete, all as plain WebDAV
// requests to this origin. The listing itself is rendered by the server; after a change the
// table is fetched again. Names are only ever set as text, never as HTML.
'use strict';
(() => {
  const base = location.pathname.endsWith('/') ? location.pathname : location.pathname + '/';
  const table = document.getElementById('listing');
  const statusLine = document.getElementById('status');
  const say = (text, error = false) => {
    statusLine.textContent = text;
    statusLine.className = error ? 'error' : '';
  };
  const urlOf = (name, dir = false) => base + encodeURIComponent(name) + (dir ? '/' : '');

  // ---- sorting: folders first, then by the column asked for
  let sortKey = 'name';
  let sortDir = 1;
  function sortRows() {
    const tbody = table.tBodies[0];
    const value = (tr) => (sortKey === 'name' ? tr.dataset.name.toLowerCase() : Number(tr.dataset[sortKey]));
    const rows = [...tbody.rows];
    rows.sort((a, b) => {
      if (a.dataset.kind !== b.dataset.kind) return a.dataset.kind === 'dir' ? -1 : 1;
      const x = value(a);
      const y = value(b);
      return x < y ? -sortDir : x > y ? sortDir : 0;
    });
    for (const tr of rows) tbody.appendChild(tr);
    for (const th of table.tHead.querySelectorAll('th[data-sort]')) {
      if (th.dataset.sort === sortKey) th.setAttribute('aria-sort', sortDir === 1 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    }
  }
  for (const th of table.tHead.querySelectorAll('th[data-sort]')) {
    th.querySelector('button').addEventListener('click', () => {
      sortDir = sortKey === th.dataset.sort ? -sortDir : 1;
      sortKey = th.dataset.sort;
      sortRows();
    });
  }

  sortRows(); // the server sends the entries in the upstream's order

  if (document.body.dataset.writable !== '1') return;

  async function dav(method, url, headers = {}) {
    const res = await fetch(url, { method, headers, credentials: 'same-origin' });
    if (!res.ok) throw new Error(`${method} failed: ${res.status} ${res.statusText}`);
    return res;
  }

  /** The table again from the server, in the current order. */
  async function refresh() {
    const res = await fetch(location.pathname, { headers: { accept: 'text/html' }, credentials: 'same-origin', cache: 'no-store' });
    const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
    const fresh = doc.getElementById('listing');
    if (fresh) table.replaceChild(document.adoptNode(fresh.tBodies[0]), table.tBodies[0]);
    const empty = document.querySelector('main > p.empty');
    const freshEmpty = doc.querySelector('main > p.empty');
    if (empty && !freshEmpty) empty.remove();
    if (!empty && freshEmpty) table.after(document.adoptNode(freshEmpty));
    sortRows();
  }

  const validName = (name) => name !== '' && name !== '.' && name !== '..' && !name.includes('/');

  // ---- upload: one PUT per file, streamed from the file by the browser
  const uploads = document.getElementById('uploads');
  function upload(file) {
    return new Promise((resolve) => {
      const li = document.createElement('li');
      const name = document.createElement('span');
      name.textContent = file.name;
      const bar = document.createElement('progress');
      bar.max = Math.max(1, file.size);
      bar.value = 0;
      bar.setAttribute('aria-label', `Upload of ${file.name}`);
      const state = document.createElement('span');
      state.textContent = '0 %';
      li.append(name, bar, state);
      uploads.append(li);
      const xhr = new XMLHttpRequest();
      xhr.open('PUT', urlOf(file.name));
      xhr.upload.addEventListener('progress', (e) => {
        bar.value = e.loaded;
        state.textContent = `${Math.floor((100 * e.loaded) / Math.max(1, e.total))} %`;
      });
      xhr.addEventListener('load', () => {
        const ok = xhr.status >= 200 && xhr.status < 300;
        if (ok) { bar.value = bar.max; state.textContent = 'done'; } else { li.className = 'failed'; state.textContent = `failed (${xhr.status})`; }
        resolve(ok);
      });
      xhr.addEventListener('error', () => { li.className = 'failed'; state.textContent = 'failed'; resolve(false); });
      xhr.send(file);
    });
  }
  async function uploadAll(files) {
    const list = [...files];
    if (!list.length) return;
    say(`Uploading ${list.length} file${list.length > 1 ? 's' : ''}…`);
    let failed = 0;
    for (const file of list) if (!(await upload(file))) failed++; // one at a time: each has the whole link
    await refresh();
    say(failed ? `${failed} of ${list.length} uploads failed` : `Uploaded ${list.length} file${list.length > 1 ? 's' : ''}`, failed > 0);
  }
  const input = document.getElementById('files');
  input.addEventListener('change', () => { uploadAll(input.files).finally(() => { input.value = ''; }); });
  const drop = document.getElementById('drop');
  document.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  document.addEventListener('dragleave', (e) => { if (!e.relatedTarget) drop.classList.remove('over'); });
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer) uploadAll(e.dataTransfer.files);
  });

  // ---- new folder
  const mkdir = document.getElementById('mkdir');
  mkdir.addEventListener('submit', async (e) => {
    e.preventDefault();
    const field = document.getElementById('folder-name');
    const name = field.value.trim();
    if (!validName(name)) { say('A folder name may not be empty or contain "/"', true); return; }
    try {
      await dav('MKCOL', urlOf(name, true));
      field.value = '';
      await refresh();
      say(`Created folder ${name}`);
    } catch (err) { say(err.message, true); }
  });

  // ---- rename and delete, per row
  table.addEventListener('click', async (e) => {
    const button = e.target.closest('button.rename, button.delete');
    if (!button) return;
    const tr = button.closest('tr');
    const name = tr.dataset.name;
    const dir = tr.dataset.kind === 'dir';
    try {
      if (button.classList.contains('delete')) {
        if (!confirm(`Delete ${dir ? 'the folder' : ''} "${name}"${dir ? ' and everything in it' : ''}?`)) return;
        await dav('DELETE', urlOf(name, dir));
        say(`Deleted ${name}`);
      } else {
        const to = prompt(`Rename "${name}" to`, name);
        if (to === null || to === name) return;
        if (!validName(to)) { say('A name may not be empty or contain "/"', true); return; }
        await dav('MOVE', urlOf(name, dir), { destination: location.origin + urlOf(to, dir), overwrite: 'F' });
        say(`Renamed ${name} to ${to}`);
      }
      await refresh();
    } catch (err) { say(err.message, true); }
  });
})();
