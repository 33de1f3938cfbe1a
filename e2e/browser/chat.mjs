// Drives the chat demo at CHAT_URL, which no other client uses, in headless
// Chromium, for the Go test TestBrowserChat. Alice and bob log in from two
// browser profiles, and alice's message reaches bob. Alice reloads and opens
// more tabs that reconnect with the stored token at the same moment, then
// reloads a crowd of tabs together several times. A tab
// with socket.io-client 2.5.0 joins, and a logout ends every tab of alice.
// The script writes one JSON object per line to stdout: a step with its
// findings, then {"step":"done"}, or {"step":"error","message":...} and exit
// status 1.
//
// CHROMIUM is the browser executable, /usr/bin/chromium by default.
// SCREENSHOT, when set, is the PNG file to write a screenshot of alice's chat
// to.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync'
];

const WAIT_MS = 10000;

// CROWD_TABS tabs of alice reload together CROWD_ROUNDS times.
const CROWD_TABS = 5;
const CROWD_ROUNDS = 6;

// HANDOFF_INCREMENTS is how often each crowd tab increments a shared counter
// while holding a Web Lock.
const HANDOFF_INCREMENTS = 60;

const url = process.env.CHAT_URL;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

function writeLine(object) {
  process.stdout.write(JSON.stringify(object) + '\n');
}

// launchProfile starts Chromium with a fresh profile folder, which
// Playwright passes as --user-data-dir, and returns its context, whose pages
// share localStorage like the tabs of one browser.
async function launchProfile(name, folders) {
  const folder = mkdtempSync(join(tmpdir(), 'sockauth-chromium-' + name + '-'));
  folders.push(folder);
  return chromium.launchPersistentContext(folder, {
    executablePath: executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 900, height: 640 }
  });
}

// openPage opens path in a new page of context and records the page's errors
// in errors.
async function openPage(context, path, errors, name) {
  const page = await context.newPage();
  page.on('pageerror', (error) => errors.push(name + ': ' + error.message));
  await page.goto(url + path);
  return page;
}

function state(page) {
  return page.evaluate(() => document.getElementById('status').dataset.state);
}

async function waitForState(page, expected) {
  await page.waitForFunction((value) => document.getElementById('status').dataset.state === value, expected, { timeout: WAIT_MS });
}

// incrementUnderLock runs in a page: it increments the counter
// sockauth.handoff-test in the default store of sockauth.js count times, each
// time holding the Web Lock of the same name.
async function incrementUnderLock(count) {
  const { defaultStore } = await import('/static/sockauth.js');
  const store = defaultStore();
  for (let i = 0; i < count; i++) {
    await navigator.locks.request('sockauth.handoff-test', async () => {
      const value = Number((await store.getItem('sockauth.handoff-test')) || 0);
      await store.setItem('sockauth.handoff-test', String(value + 1));
    });
  }
}

async function readHandoffCounter() {
  const { defaultStore } = await import('/static/sockauth.js');
  return Number((await defaultStore().getItem('sockauth.handoff-test')) || 0);
}

// storedToken returns the token that the page's sockauth.js stored, or null.
function storedToken(page) {
  return page.evaluate(async () => {
    const { storedSession } = await import('/static/sockauth.js');
    const session = await storedSession();
    return session ? session.token : null;
  });
}

async function logIn(page, username, password) {
  await waitForState(page, 'login');
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.click('#login-form button[type=submit]');
  await waitForState(page, 'connected');
}

async function send(page, text) {
  await page.fill('#message-text', text);
  await page.press('#message-text', 'Enter');
}

// waitForMessage waits until page shows a chat message with text.
async function waitForMessage(page, text) {
  await page.waitForFunction((value) => {
    return Array.from(document.querySelectorAll('#messages li span')).some((span) => span.textContent === value);
  }, text, { timeout: WAIT_MS });
}

async function main() {
  const folders = [];
  const errors = [];
  let alice = null;
  let bob = null;

  try {
    alice = await launchProfile('alice', folders);
    bob = await launchProfile('bob', folders);

    const tab1 = await openPage(alice, '/', errors, 'alice tab 1');
    await logIn(tab1, 'alice', 'alice-password');
    const bobTab = await openPage(bob, '/', errors, 'bob');
    await logIn(bobTab, 'bob', 'bob-password');
    writeLine({
      step: 'login',
      alice: await tab1.textContent('#subject'),
      bob: await bobTab.textContent('#subject'),
      client: await tab1.textContent('#client-version')
    });

    const hello = 'hello bob';
    await send(tab1, hello);
    await waitForMessage(bobTab, hello);
    await waitForMessage(tab1, hello);
    writeLine({ step: 'message', text: hello, seen_by_bob: true });

    const beforeReload = await storedToken(tab1);
    await tab1.reload();
    await waitForState(tab1, 'connected');
    const afterReload = await storedToken(tab1);
    writeLine({ step: 'reload', state: await state(tab1), rotated: beforeReload !== null && afterReload !== null && beforeReload !== afterReload });

    // A second tab opens while the first reloads, so both present the stored
    // token at the same moment.
    const tab2 = await alice.newPage();
    tab2.on('pageerror', (error) => errors.push('alice tab 2: ' + error.message));
    await Promise.all([tab1.reload(), tab2.goto(url + '/')]);
    await Promise.all([waitForState(tab1, 'connected'), waitForState(tab2, 'connected')]);

    const fromTab2 = 'hello from a second tab';
    await send(tab2, fromTab2);
    await Promise.all([waitForMessage(tab1, fromTab2), waitForMessage(bobTab, fromTab2)]);

    // A session revoked for reuse would disconnect the tabs within the
    // server's session check, and a reload with a dead token would fail.
    await tab1.waitForTimeout(1500);
    await tab2.reload();
    await waitForState(tab2, 'connected');
    writeLine({
      step: 'tabs',
      tab1: await state(tab1),
      tab2: await state(tab2),
      same_token: (await storedToken(tab1)) === (await storedToken(tab2))
    });

    // More tabs reconnect together several times. Each rotation hands the
    // lock to a tab that must read the token the previous holder stored.
    const crowd = [tab1, tab2];
    while (crowd.length < CROWD_TABS) {
      crowd.push(await openPage(alice, '/', errors, 'alice tab ' + (crowd.length + 1)));
    }
    await Promise.all(crowd.map((page) => waitForState(page, 'connected')));
    for (let round = 0; round < CROWD_ROUNDS; round++) {
      await Promise.all(crowd.map((page) => page.reload()));
      await Promise.all(crowd.map((page) => waitForState(page, 'connected')));
    }
    await tab1.waitForTimeout(1500);
    const crowdStates = await Promise.all(crowd.map((page) => state(page)));
    const crowdTokens = await Promise.all(crowd.map((page) => storedToken(page)));
    writeLine({
      step: 'crowd',
      tabs: crowd.length,
      rounds: CROWD_ROUNDS,
      connected: crowdStates.filter((value) => value === 'connected').length,
      same_token: crowdTokens.every((token) => token !== null && token === crowdTokens[0])
    });

    // Every crowd tab increments a counter in the default store many times,
    // each time holding one Web Lock. A tab that reads a value older than
    // the previous holder wrote loses an increment, as a tab that presents a
    // rotated token revokes the session.
    await Promise.all(crowd.map((page) => page.evaluate(incrementUnderLock, HANDOFF_INCREMENTS)));
    writeLine({
      step: 'handoff',
      expected: crowd.length * HANDOFF_INCREMENTS,
      counted: await tab1.evaluate(readHandoffCounter)
    });

    for (const page of crowd.slice(2)) {
      await page.close();
    }

    const tab3 = await openPage(alice, '/?client=2', errors, 'alice tab 3');
    await waitForState(tab3, 'connected');
    const fromTab3 = 'hello from a tab with socket.io-client 2.5.0';
    await send(tab3, fromTab3);
    await Promise.all([waitForMessage(bobTab, fromTab3), waitForMessage(tab1, fromTab3)]);
    writeLine({ step: 'client2', state: await state(tab3), client: await tab3.textContent('#client-version') });

    if (process.env.SCREENSHOT) {
      await send(bobTab, 'hi alice, every tab sees this');
      await waitForMessage(tab1, 'hi alice, every tab sees this');
      await tab1.screenshot({ path: process.env.SCREENSHOT });
      writeLine({ step: 'screenshot', path: process.env.SCREENSHOT });
    }

    await tab1.click('#logout');
    await Promise.all([waitForState(tab1, 'login'), waitForState(tab2, 'login'), waitForState(tab3, 'login')]);
    writeLine({
      step: 'logout',
      tab1: await state(tab1),
      tab2: await state(tab2),
      tab3: await state(tab3),
      stored: await storedToken(tab1),
      bob: await state(bobTab)
    });

    writeLine({ step: 'errors', errors: errors });
  } finally {
    if (alice) {
      await alice.close();
    }
    if (bob) {
      await bob.close();
    }
    for (const folder of folders) {
      rmSync(folder, { recursive: true, force: true });
    }
  }
}

const timeout = setTimeout(() => {
  writeLine({ step: 'error', message: 'browser scenario timed out after 150 s' });
  process.exit(1);
}, 150000);

main().then(() => {
  clearTimeout(timeout);
  writeLine({ step: 'done' });
  process.exit(0);
}, (error) => {
  clearTimeout(timeout);
  writeLine({ step: 'error', message: String(error && error.stack ? error.stack : error) });
  process.exit(1);
});
