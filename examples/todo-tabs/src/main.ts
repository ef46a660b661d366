// An offline-first to-do list in which every open tab is a member of one meshkv cluster: the
// tabs of this origin find each other over BroadcastChannel, replicate over WebRTC and persist
// to IndexedDB. Every change goes into the durable outbox with a guard ("the item is as I last
// saw it"), so the list keeps working while a tab is cut off: its changes show at once, marked
// pending, and when it is back each one either commits or comes back as a conflict, shown here
// with the value the item has now. Untick "online" to cut this tab off (docs/offline.md).
import { openBrowserMember, type BrowserMemberStatus, type OutboxOutcome } from 'meshkv/browser';

interface Todo {
  text: string;
  done: boolean;
}

const statusLine = document.querySelector<HTMLParagraphElement>('#status')!;
const notice = document.querySelector<HTMLParagraphElement>('#notice')!;
const online = document.querySelector<HTMLInputElement>('#online')!;
const form = document.querySelector<HTMLFormElement>('#add')!;
const input = form.querySelector('input')!;
const list = document.querySelector<HTMLUListElement>('#todos')!;

const member = await openBrowserMember({ cluster: 'todo-tabs', secret: 'todo-tabs', consistency: 'local' });
const outbox = await member.outbox();
let pendingCount = 0;

/** Redraws the list from the local replica with the outbox's pending changes laid over it. */
async function render(): Promise<void> {
  const items = await outbox.list('todo/');
  pendingCount = (await outbox.pending()).length;
  list.replaceChildren(
    ...items.map(({ key, value, pending }) => {
      const todo = JSON.parse(value!) as Todo;
      const item = document.createElement('li');
      item.dataset.key = key;
      item.classList.toggle('done', todo.done);
      item.classList.toggle('pending', pending);
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.checked = todo.done;
      box.onchange = () => void change(key, (t) => (t === null ? null : { ...t, done: box.checked }));
      const text = document.createElement('span');
      text.textContent = todo.text + (pending ? ' (pending)' : '');
      const remove = document.createElement('button');
      remove.textContent = 'Delete';
      remove.onclick = () => void change(key, () => null);
      item.append(box, text, remove);
      return item;
    }),
  );
  showStatus(member.status());
}

/**
 * Queues a change of one item, guarded by the read it is based on: it commits only if nobody
 * changed the item meanwhile. `update` returns the new item, or null to delete it.
 */
async function change(key: string, update: (t: Todo | null) => Todo | null): Promise<void> {
  const tx = outbox.begin();
  const now = await tx.get(key);
  const next = update(now.value === null ? null : (JSON.parse(now.value) as Todo));
  if (next === null) tx.delete(key);
  else tx.put(key, JSON.stringify(next));
  await tx.commit();
}

function showStatus(s: BrowserMemberStatus): void {
  statusLine.textContent = `${s.name}: ${s.role}, ${s.connectivity}, ${s.voters.length} voters, ${s.connectedPeers.length} peers connected${s.leader === 0 ? ', no leader' : ''}; ${pendingCount} pending`;
}

function showOutcome(o: OutboxOutcome): void {
  if (o.status === 'conflict') {
    const now = o.current?.[0];
    notice.textContent = `A change made while away conflicted: the item was changed meanwhile${now ? `; it is now "${(JSON.parse(new TextDecoder().decode(now.value)) as Todo).text}"` : ' (it was deleted)'}.`;
  } else if (o.status === 'refused') notice.textContent = `A change was refused: ${o.message}`;
}

member.onStatus(showStatus);
outbox.onChange(() => void render());
outbox.onOutcome(showOutcome);
online.onchange = () => member.setOffline(!online.checked);
// Every change any tab makes to the list, as this tab's replica applies it (offline too).
await member.client.follow('todo/', { onSnapshot: () => void render(), onEvent: () => void render() });

form.onsubmit = (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (text === '') return;
  input.value = '';
  // Keys sort by creation time; the random tail keeps two tabs' keys apart.
  void change(`todo/${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`, () => ({ text, done: false }));
};
for (const control of form.elements) (control as HTMLInputElement).disabled = false;
