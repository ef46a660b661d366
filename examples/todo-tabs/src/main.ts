// A to-do list in which every open tab is a member of one meshkv cluster: the tabs of this
// origin find each other over BroadcastChannel, replicate over WebRTC and persist to IndexedDB.
// Every tab shows the same list, because every change is a write to the cluster and every tab
// watches the `todo/` keys.
import { openBrowserMember, type BrowserMemberStatus } from 'meshkv/browser';

interface Todo {
  text: string;
  done: boolean;
}

const statusLine = document.querySelector<HTMLParagraphElement>('#status')!;
const form = document.querySelector<HTMLFormElement>('#add')!;
const input = form.querySelector('input')!;
const list = document.querySelector<HTMLUListElement>('#todos')!;
const todos = new Map<string, Todo>();

function render(): void {
  list.replaceChildren(
    ...[...todos].sort(([a], [b]) => a.localeCompare(b)).map(([key, todo]) => {
      const item = document.createElement('li');
      item.dataset.key = key;
      item.classList.toggle('done', todo.done);
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.checked = todo.done;
      box.onchange = () => void save(key, { ...todo, done: box.checked });
      const text = document.createElement('span');
      text.textContent = todo.text;
      const remove = document.createElement('button');
      remove.textContent = 'Delete';
      remove.onclick = () => void attempt(() => member.client.delete().key(key));
      item.append(box, text, remove);
      return item;
    }),
  );
}

function describe(s: BrowserMemberStatus): string {
  return `${s.name}: ${s.role}, ${s.voters.length} voters, ${s.connectedPeers.length} peers connected${s.leader === 0 ? ', no leader yet' : ''}`;
}

/** Runs a write; a failed one (say, no majority of tabs reachable) is shown, not lost silently. */
async function attempt(write: () => PromiseLike<unknown>): Promise<void> {
  try {
    await write();
  } catch (err) {
    statusLine.textContent = `error: ${(err as Error).message}`;
  }
}

const member = await openBrowserMember({ cluster: 'todo-tabs', secret: 'todo-tabs' });
const save = (key: string, todo: Todo) => attempt(() => member.client.put(key).value(JSON.stringify(todo)));
member.onStatus((s) => (statusLine.textContent = describe(s)));
statusLine.textContent = describe(member.status());

// Read the list, then follow every change made after that read, by any tab.
const read = await member.client.getAll().prefix('todo/').exec();
for (const kv of read.kvs) todos.set(new TextDecoder().decode(kv.key), JSON.parse(new TextDecoder().decode(kv.value)) as Todo);
render();
const watcher = await member.client.watch().prefix('todo/').startRevision(read.header.revision + 1).create();
watcher.on('put', (kv) => {
  todos.set(new TextDecoder().decode(kv.key), JSON.parse(new TextDecoder().decode(kv.value)) as Todo);
  render();
});
watcher.on('delete', (kv) => {
  todos.delete(new TextDecoder().decode(kv.key));
  render();
});

form.onsubmit = (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (text === '') return;
  input.value = '';
  // Keys sort by creation time; the random tail keeps two tabs' keys apart.
  void save(`todo/${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`, { text, done: false });
};
for (const control of form.elements) (control as HTMLInputElement).disabled = false;
