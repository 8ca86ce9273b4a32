// Interface languages (issue #10): web/i18n/<code>.json, one file per
// language, and the pages in real Chromium in every language.
//
//  1. The files: valid JSON; hy, az, ru, tr have every key of en.json (the
//     listener's, the booth's and the control page's), no key en lacks, no empty text,
//     the same {placeholders} as English, plural objects with "other"; and
//     every key the pages use (data-i18n, data-i18n-attr, t('...')) exists.
//  2. Each page in each of its languages: no missing key at run time
//     (window.dragomanI18n.missing), <html lang> set, and no English text of
//     the page's own strings left on screen (visible text, aria-label, title,
//     placeholder): what catches a string hard-coded in JS or HTML.
//     Listener (phone-sized, playing a channel, the original-audio slider
//     at 30 %) in en hy az ru tr, booth
//     (signed in to workshop/hy) in en hy az ru tr, control (signed in, a
//     booth's slow-down request in its alerts and feed) in en hy az ru tr:
//     the server's alerts said in the page's language from their params.
//  3. The listener's language follows the channel (hy link -> Armenian page,
//     picking Türkçe the channel -> Turkish page) unless the listener picked
//     one in the picker, which is remembered across a reload.
//
// Screenshots: build/test-artifacts/i18n-<page>-<lang>.png. Run from the repo
// root: `node tests/browser/i18n.test.mjs` (the Makefile: under `unshare -n`).

import fs from 'node:fs';
import path from 'node:path';
import {
  ARTIFACTS, ROOT, assert, fakeMicArgs, launchBrowser, run, sleep, startServer, stopServer, writeToneWav,
} from './lib.mjs';

const LANGS = ['en', 'hy', 'az', 'ru', 'tr'];
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 1 };
const DESK = { viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 };
const WEB = path.join(ROOT, 'web');
// Which keys each page shows (prefixes).
const PAGE_KEYS = {
  listener: ['common.', 'langName.', 'unit.', 'lang.', 'listener.', 'channelState.', 'status.', 'watch.'],
  booth: ['common.', 'langName.', 'unit.', 'booth.'],
  control: ['common.', 'langName.', 'unit.', 'control.'],
};

let server;
let browser;
const log = [];
const dicts = Object.fromEntries(LANGS.map((l) => [l, JSON.parse(fs.readFileSync(path.join(WEB, 'i18n', `${l}.json`), 'utf8'))]));

const tests = [];
const test = (name, fn) => tests.push([name, fn]);

const placeholders = (v) => [...new Set((typeof v === 'string' ? v : Object.values(v).join(' ')).match(/\{\w+\}/g) || [])].sort().join(',');

test('i18n files: complete, same placeholders, every key the pages use exists', async () => {
  const en = dicts.en;
  const problems = [];
  for (const lang of LANGS) {
    const d = dicts[lang];
    for (const [k, v] of Object.entries(d)) {
      if (!(k in en)) problems.push(`${lang}: key ${k} not in en.json`);
      if (typeof v === 'string' ? !v.trim() : !(v && typeof v === 'object' && v.other)) problems.push(`${lang}: ${k} empty or plural without "other"`);
      else if (k in en && placeholders(v) !== placeholders(en[k])) problems.push(`${lang}: ${k} placeholders ${placeholders(v)} vs en ${placeholders(en[k])}`);
    }
    for (const k of Object.keys(en)) if (!(k in d)) problems.push(`${lang}: missing ${k}`);
  }
  // Keys in the code: data-i18n="k", data-i18n-attr="attr:k;attr:k", t('k'.
  const used = new Set();
  for (const f of fs.readdirSync(WEB).filter((n) => /\.(html|js)$/.test(n))) {
    const src = fs.readFileSync(path.join(WEB, f), 'utf8').split('\n').filter((l) => !/^\s*\/\//.test(l)).join('\n');
    for (const m of src.matchAll(/data-i18n="([^"]+)"/g)) used.add(m[1]);
    for (const m of src.matchAll(/data-i18n-attr="([^"]+)"/g)) for (const p of m[1].split(';')) used.add(p.split(':')[1]);
    for (const m of src.matchAll(/\bt\('([\w.-]+)'/g)) used.add(m[1]);
  }
  for (const k of used) if (!(k in en)) problems.push(`the pages use ${k}, en.json lacks it`);
  // every reason the server gives for refusing a crew action has its words (control.js refusal())
  const controlC = fs.readFileSync(path.join(WEB, '..', 'src', 'control.c'), 'utf8');
  const codes = [...controlC.matchAll(/REFUSE \(\s*(?:rec \? )?"([\w-]+)"(?:\s*:\s*"([\w-]+)")?/g)].flatMap((m) => m.slice(1).filter(Boolean));
  if (codes.length < 10) problems.push(`found only ${codes.length} refusal codes in src/control.c`);
  for (const c of codes) if (!(`control.refusal.${c}` in en)) problems.push(`src/control.c refuses with ${c}, en.json lacks control.refusal.${c}`);
  assert(problems.length === 0, `${problems.length} problems:\n  ${problems.slice(0, 40).join('\n  ')}`);
  return `${Object.keys(en).length} keys in en; ${LANGS.map((l) => `${l} ${Object.keys(dicts[l]).length}`).join(', ')}; ${used.size} keys used literally by the pages`;
});

// English fragments (>= 5 letters, placeholders cut out) of the page's keys
// whose translation differs: none may be left, as a word, on a page in
// `lang`. Language names are endonyms on purpose (the English channel is
// "English" on every page); a fragment the translations use too is no sign.
function leftovers(page, lang) {
  if (lang === 'en') return [];
  const frags = new Set();
  const translated = Object.values(dicts[lang]).map((v) => JSON.stringify(v)).join('\n');
  for (const [k, v] of Object.entries(dicts.en)) {
    if (!PAGE_KEYS[page].some((p) => k.startsWith(p)) || typeof v !== 'string') continue;
    if (k.startsWith('lang.') || k.startsWith('langName.')) continue;
    if (JSON.stringify(dicts[lang][k]) === JSON.stringify(v)) continue;
    for (const f of v.split(/\{\w+\}/)) {
      const s = f.trim().replace(/^[\s·:()–-]+|[\s·:()–-]+$/g, '');
      if ((s.match(/[A-Za-z]/g) || []).length >= 5 && !translated.includes(s)) frags.add(s);
    }
  }
  return [...frags];
}
const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
// Where `frag` stands as words in `text` (not inside a longer word or a path).
function found(text, frag) {
  const m = new RegExp(`(?<![\\p{L}/_.-])${escapeRe(frag)}(?![\\p{L}/_-])`, 'u').exec(text);
  return m ? text.slice(Math.max(0, m.index - 30), m.index + frag.length + 30).replace(/\s+/g, ' ') : null;
}

// Everything a person (or a screen reader) gets from the page: visible text
// and labels; not what the server or a person wrote (data-server-text: the
// server's alert messages are English, see the report).
const pageText = (page) => page.evaluate(() => {
  const hide = [...document.querySelectorAll('[data-server-text]')].filter((el) => el.style.display !== 'none');
  for (const el of hide) el.style.display = 'none';
  const parts = [document.title, document.body.innerText];
  for (const el of hide) el.style.display = '';
  for (const el of document.querySelectorAll('[aria-label],[title],[placeholder]')) {
    if (el.closest('[hidden]')) continue;
    for (const a of ['aria-label', 'title', 'placeholder']) if (el.getAttribute(a)) parts.push(el.getAttribute(a));
  }
  return parts.join('\n');
});

async function check(page, kind, lang, shotName) {
  const st = await page.evaluate(() => ({ lang: document.documentElement.lang, dir: document.documentElement.dir, missing: [...window.dragomanI18n.missing] }));
  assert(st.lang === lang, `${kind}: <html lang="${st.lang}">, want ${lang}`);
  assert(st.dir === 'ltr', `${kind}: dir "${st.dir}"`);
  assert(st.missing.length === 0, `${kind} in ${lang}: missing keys ${st.missing.join(', ')}`);
  const text = await pageText(page);
  const left = leftovers(kind, lang).map((f) => [f, found(text, f)]).filter(([, at]) => at);
  assert(left.length === 0, `${kind} in ${lang}: English left on the page: ${left.map(([f, at]) => `"${f}" in "…${at}…"`).join(', ')}`);
  if (shotName) {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, `i18n-${shotName}.png`), fullPage: kind !== 'control' });
  }
  return text.length;
}

test('listener page in en hy az ru tr (phone, playing): no missing key, no English left', async () => {
  const notes = [];
  for (const lang of LANGS) {
    // Three ways in: hy follows the Armenian channel of the link, ru the
    // browser's language (on the original channel), the others a ?ui= link.
    const how = { hy: '?room=main&lang=hy', ru: '?room=main&lang=orig' }[lang] || `?room=main&lang=${lang}&ui=${lang}`;
    const ctx = await browser.newContext({ ...PHONE, locale: lang === 'ru' ? 'ru-RU' : 'en-US' });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => log.push(`[listener ${lang}] ${e.message}`));
    await page.goto(`${server.url}/${how}`);
    await page.waitForFunction(() => !document.querySelector('#play').disabled, null, { timeout: 10000 });
    await page.click('#play');
    await page.waitForFunction(() => window.dragoman.stats.state === 'playing', null, { timeout: 10000 });
    if (lang !== 'ru') { // the listener's own mix, at 30 %
      await page.$eval('#orig-level', (el) => { el.value = '30'; el.dispatchEvent(new Event('input', { bubbles: true })); });
    }
    await sleep(500);
    await check(page, 'listener', lang, `listener-${lang}`);
    // The Watch mode's own strings too (the mode switch re-renders them).
    await page.click('button[data-mode="watch"]');
    await sleep(300);
    await check(page, 'listener', lang);
    const status = await page.textContent('#status');
    notes.push(`${lang}: "${status}"`);
    await ctx.close();
  }
  return notes.join('; ');
});

test('listener: follows the channel\'s language until the listener picks one (remembered)', async () => {
  const ctx = await browser.newContext({ ...PHONE, locale: 'en-US' });
  const page = await ctx.newPage();
  await page.goto(`${server.url}/?room=main&lang=hy`);
  await page.waitForFunction(() => !document.querySelector('#play').disabled, null, { timeout: 10000 });
  const lang0 = await page.evaluate(() => document.documentElement.lang);
  assert(lang0 === 'hy', `hy channel link: page in ${lang0}`);
  await page.click('button[data-lang="tr"]');
  await page.waitForFunction(() => document.documentElement.lang === 'tr', null, { timeout: 3000 });
  const heading = await page.textContent('#heading');
  // An explicit pick wins over the channel, and is kept.
  await page.selectOption('#ui-lang', 'ru');
  await page.waitForFunction(() => document.documentElement.lang === 'ru', null, { timeout: 3000 });
  await page.click('button[data-lang="az"]');
  await sleep(300);
  const after = await page.evaluate(() => document.documentElement.lang);
  assert(after === 'ru', `after picking Русский then the az channel the page is in ${after}`);
  await page.reload();
  await page.waitForFunction(() => !document.querySelector('#play').disabled, null, { timeout: 10000 });
  const reloaded = await page.evaluate(() => ({ lang: document.documentElement.lang, picker: document.querySelector('#ui-lang').value, h: document.querySelector('#heading').textContent }));
  assert(reloaded.lang === 'ru' && reloaded.picker === 'ru', `after reload: ${JSON.stringify(reloaded)}`);
  await ctx.close();
  return `hy link -> hy; tr channel -> tr ("${heading}"); picked ru, kept over the az channel and a reload ("${reloaded.h}")`;
});

test('booth page in en hy az ru tr (signed in to workshop/hy, on air): no missing key, no English left', async () => {
  const ctx = await browser.newContext({ ...DESK, locale: 'en-US' });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => log.push(`[booth] ${e.message}`));
  await page.goto(`${server.url}/booth?room=workshop&booth=hy`);
  await page.waitForFunction(() => document.querySelector('#booth').options.length > 0, null, { timeout: 10000 });
  await check(page, 'booth', 'en', 'booth-signin-en');
  await page.fill('#name', 'Anna');
  await page.fill('#token', 'demo-hy-booth');
  await page.click('#signin-button');
  await page.waitForFunction(() => {
    const d = window.dragomanBooth;
    const me = d.state && (d.state.interpreters || []).find((i) => i.id === d.stats.id);
    return d.pc && d.pc.connectionState === 'connected' && me && me.connected !== false;
  }, null, { timeout: 20000 });
  await page.keyboard.press('o');
  await page.waitForFunction(() => window.dragomanBooth.state && window.dragomanBooth.state.on_air, null, { timeout: 5000 });
  await page.fill('#chat-text', 'hello');
  await page.press('#chat-text', 'Enter');
  await page.click('#slow-down');
  await sleep(500);
  const notes = [];
  for (const lang of LANGS) {
    await page.selectOption('#ui-lang', lang);
    await page.waitForFunction((l) => document.documentElement.lang === l, lang, { timeout: 3000 });
    await sleep(300);
    await check(page, 'booth', lang, `booth-${lang}`);
    notes.push(`${lang}: "${await page.textContent('#onair-label')}"`);
  }
  await page.selectOption('#ui-lang', 'en'); // leave the shared localStorage in English
  await page.click('#signout');
  await ctx.close();
  return notes.join(', ');
});

test('booth sign-in page loads in the browser\'s language (ru)', async () => {
  const ctx = await browser.newContext({ ...DESK, locale: 'ru-RU' });
  const page = await ctx.newPage();
  await page.goto(`${server.url}/booth?room=workshop&booth=hy`);
  await page.waitForFunction(() => document.querySelector('#booth').options.length > 0 && document.documentElement.lang === 'ru', null, { timeout: 10000 });
  await check(page, 'booth', 'ru', 'booth-signin-ru');
  const h = await page.textContent('#signin h2');
  await ctx.close();
  return `"${h}"`;
});

test('control page in en hy az ru tr (signed in, an alert up): no missing key, no English left, alerts in the page\'s words', async () => {
  // A booth's slow-down request: an alert (kept 30 s) and a line in the feed,
  // both sent by the server with English text.
  const bctx = await browser.newContext({ ...DESK, locale: 'en-US' });
  const booth = await bctx.newPage();
  booth.on('pageerror', (e) => log.push(`[control/booth] ${e.message}`));
  await booth.goto(`${server.url}/booth?room=workshop&booth=hy`);
  await booth.waitForFunction(() => document.querySelector('#booth').options.length > 0, null, { timeout: 10000 });
  await booth.fill('#name', 'Anna');
  await booth.fill('#token', 'demo-hy-booth');
  await booth.click('#signin-button');
  await booth.waitForFunction(() => !document.querySelector('#slow-down').disabled, null, { timeout: 10000 });
  const notes = [];
  try {
    for (const lang of LANGS) {
      // ru from the browser's language, the others picked in the header's picker.
      const ctx = await browser.newContext({ ...DESK, locale: lang === 'ru' ? 'ru-RU' : 'en-US' });
      const page = await ctx.newPage();
      page.on('pageerror', (e) => log.push(`[control ${lang}] ${e.message}`));
      await page.goto(`${server.url}/control`);
      const options = await page.$$eval('#ui-lang option', (os) => os.map((o) => o.value).join(' '));
      assert(options === LANGS.join(' '), `control picker offers "${options}"`);
      if (lang !== 'ru' && lang !== 'en') {
        await page.selectOption('#ui-lang', lang);
        await page.waitForFunction((l) => document.documentElement.lang === l, lang, { timeout: 3000 });
      }
      await page.fill('#token', 'demo-admin-token');
      await page.fill('#name', 'i18n test');
      await page.click('#signin-btn');
      await page.waitForFunction(() => document.querySelectorAll('.strip').length > 0 && document.querySelector('#conn').dataset.kind === 'ok', null, { timeout: 10000 });
      await booth.click('#slow-down'); // each time: a raise keeps the alert up for 30 s more
      await page.waitForFunction(() => document.querySelector('#alerts li[data-kind="slow-down"][data-active="true"]'), null, { timeout: 5000 });
      await sleep(1500);
      await check(page, 'control', lang, `control-${lang}`);
      // The alert and the feed line in this language, Anna's name in it, nothing marked as the server's words.
      const seen = await page.evaluate(() => {
        const li = document.querySelector('#alerts li[data-kind="slow-down"][data-active="true"]');
        const feed = [...document.querySelectorAll('#chat li[data-kind="slow-down"] .feed-text')];
        return { kind: li.querySelector('.alert-kind').textContent, msg: li.querySelector('.alert-msg').textContent,
          server: li.querySelectorAll('[data-server-text]').length, feed: feed.map((f) => f.textContent),
          feedServer: feed.filter((f) => f.matches('[data-server-text]') || f.querySelector('[data-server-text]')).length };
      });
      const want = dicts[lang]['control.alertMsg.slow-down'].replace('{who}', 'Anna');
      assert(seen.msg === want, `${lang}: slow-down alert says "${seen.msg}", want "${want}"`);
      assert(seen.kind === dicts[lang]['control.alert.slow-down'], `${lang}: alert kind "${seen.kind}"`);
      assert(seen.server === 0 && seen.feedServer === 0, `${lang}: server text in the alert or feed: ${JSON.stringify(seen)}`);
      assert(seen.feed.length >= 1 && seen.feed.every((f) => f === want || f === dicts[lang]['control.slowDownPlease']),
        `${lang}: feed lines ${JSON.stringify(seen.feed)}`);
      const stageTitle = await page.getAttribute('.room[data-room="main"] .stage', 'title');
      assert(!/receiving|waiting for/.test(stageTitle) || lang === 'en', `${lang}: stage title in English: "${stageTitle}"`);
      notes.push(`${lang}: "${seen.msg}"`);
      await ctx.close();
    }
  } finally {
    await bctx.close();
  }
  return notes.join('; ');
});

let code = 1;
try {
  server = await startServer();
  browser = await launchBrowser(fakeMicArgs(writeToneWav(path.join(ARTIFACTS, 'i18n-mic.wav'), { freqs: [9000] })));
  code = await run('i18n', tests);
} catch (e) {
  console.log(`i18n: setup failed: ${e.stack || e}`);
  console.log('i18n: 0 passed, 1 failed');
} finally {
  if (code && log.length) console.log(`page log (last 20):\n${log.slice(-20).join('\n')}`);
  if (browser) await browser.close().catch(() => {});
  if (server) await stopServer(server).catch(() => {});
}
process.exit(code);
