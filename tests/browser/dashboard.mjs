#!/usr/bin/env node
// Drives gantry's web dashboard in headless Chromium for a Rust integration test.
//
//   node tests/browser/dashboard.mjs --url http://127.0.0.1:PORT/ --router rg@file \
//        --service rg@file --server h2c://127.0.0.1:PORTB --screenshot PATH [--token T] \
//        [--warned svc@file] [--refused <label>] [--ignored <label>]
//
// With --warned, the services view must also show that service as a warning with
// its insecure_skip_verify note.
//
// Protocol on stdio (stdout carries only these lines; diagnostics go to stderr):
//   -> READY            the dashboard shows the router, the service and the server UP
//   <- STOPPED          the test has stopped the server
//   -> DOWN_AFTER_MS n  the server row turned DOWN n ms after STOPPED, without a reload
//   -> OK               screenshot saved; exit 0
//   -> FAIL: reason     on any failure (screenshot saved when a page exists); exit 1
//
// Chromium: $CHROMIUM, else /usr/bin/chromium (scripts/browser-setup.sh installs it).
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

const HARD_TIMEOUT_MS = 60_000;
const STEP_DEADLINE_MS = 10_000;
const DOWN_DEADLINE_MS = 3_000;
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage',
];

const out = (line) => process.stdout.write(line + '\n');
const log = (msg) => process.stderr.write(`dashboard.mjs: ${msg}\n`);
// One line, without the terminal colour codes Playwright puts in its call logs.
const oneLine = (s) => String(s).replace(/\x1b\[[0-9;]*m/g, '').replace(/\s+/g, ' ').trim();

let args = {};
let context = null;
let page = null;
let userDataDir = null;
let finished = false;

function parseArgs(argv) {
  const known = new Set(['url', 'router', 'service', 'server', 'screenshot', 'token', 'warned', 'refused', 'ignored']);
  const res = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const m = /^--([a-z]+)(?:=(.*))?$/.exec(a);
    if (!m || !known.has(m[1])) throw new Error(`unknown argument ${JSON.stringify(a)}`);
    let v = m[2];
    if (v === undefined) {
      if (i + 1 >= argv.length) throw new Error(`--${m[1]} needs a value`);
      v = argv[++i];
    }
    res[m[1]] = v;
  }
  for (const k of ['url', 'router', 'service', 'server', 'screenshot']) {
    if (!res[k]) throw new Error(`--${k} is required`);
  }
  return res;
}

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms); }),
  ]).finally(() => clearTimeout(t));
}

async function cleanup() {
  const c = context;
  context = null;
  if (c) {
    try { await withTimeout(c.close(), 10_000, 'closing the browser'); } catch (e) { log(oneLine(e.message)); }
  }
  if (userDataDir) {
    try { fs.rmSync(userDataDir, { recursive: true, force: true }); } catch (e) { log(oneLine(e.message)); }
    userDataDir = null;
  }
}

async function screenshot() {
  if (!page || !args.screenshot) return;
  try {
    await page.screenshot({ path: args.screenshot, fullPage: true, timeout: 5_000 });
  } catch (e) {
    log(`screenshot failed: ${oneLine(e.message)}`);
  }
}

async function fail(reason) {
  if (finished) return;
  finished = true;
  await screenshot();
  out(`FAIL: ${oneLine(reason)}`);
  await cleanup();
  process.exit(1);
}

// Waits (polling the DOM) until fn(arg) is truthy in the page, at most `ms`.
async function waitFor(fn, arg, ms, what, describe) {
  try {
    await page.waitForFunction(fn, arg, { timeout: Math.max(1, ms), polling: 50 });
  } catch (e) {
    let state = '';
    if (describe) {
      try { state = ` (${await page.evaluate(describe, arg)})`; } catch (_) { /* page gone */ }
    }
    throw new Error(`${what} not seen within ${ms} ms${state}: ${oneLine(e.message).slice(0, 200)}`);
  }
}

// In-page helpers (serialised by Playwright; no closures over Node variables).
const findService = ([service]) =>
  [...document.querySelectorAll('[data-service]')].find((el) => el.getAttribute('data-service') === service) || null;
function describeServices([service, server]) {
  const services = [...document.querySelectorAll('[data-service]')].map((el) => el.getAttribute('data-service'));
  const rows = [...document.querySelectorAll('tr[data-server-url]')]
    .map((tr) => `${tr.getAttribute('data-server-url')}=${tr.getAttribute('data-health')}`);
  const banner = document.getElementById('banner');
  return `hash=${location.hash} services=[${services.join(', ')}] servers=[${rows.join(', ')}]` +
    (banner && !banner.hidden ? ' banner=' + JSON.stringify(banner.textContent.trim()) : '') +
    ` wanted ${service} / ${server}`;
}

// Resolves with the time STOPPED was read; rejects if stdin closes first.
function stdinStopped() {
  return new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: process.stdin, terminal: false });
    let done = false;
    rl.on('line', (line) => {
      if (!done && line.trim() === 'STOPPED') {
        done = true;
        resolve(performance.now());
      }
    });
    // The test closed stdin (or died) without STOPPED: nobody will ever send it, so fail now.
    rl.on('close', () => {
      if (done) return;
      reject(new Error('stdin closed before STOPPED'));
      fail('stdin closed before STOPPED');
    });
  });
}

async function main() {
  args = parseArgs(process.argv.slice(2));
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  if (!fs.existsSync(executablePath)) {
    throw new Error(`no Chromium at ${executablePath} (run scripts/browser-setup.sh or set CHROMIUM)`);
  }
  const stopped = stdinStopped();
  stopped.catch(() => {}); // handled where awaited

  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 800 },
    timeout: 30_000,
    extraHTTPHeaders: args.token ? { Authorization: `Bearer ${args.token}` } : undefined,
  });
  context.on('close', () => { if (!finished) fail('the browser closed unexpectedly'); });
  if (args.token) {
    await context.addInitScript((t) => { try { sessionStorage.setItem('gantry.token', t); } catch (_) { /* */ } }, args.token);
  }
  page = context.pages()[0] || await context.newPage();
  page.on('pageerror', (e) => log(`page error: ${oneLine(e.message)}`));
  page.on('console', (m) => { if (m.type() === 'error') log(`console error: ${oneLine(m.text())}`); });

  const resp = await page.goto(args.url, { waitUntil: 'domcontentloaded', timeout: STEP_DEADLINE_MS });
  if (resp && !resp.ok()) throw new Error(`GET ${args.url} answered ${resp.status()}`);
  await waitFor(() => document.body && document.body.getAttribute('data-loaded') === 'true', null,
    STEP_DEADLINE_MS, 'body[data-loaded=true]',
    () => `banner=${!document.getElementById('banner')?.hidden} auth=${!document.getElementById('auth')?.hidden}`);

  // Routers view: the router's row.
  await page.click('#nav a[data-nav="routers"]', { timeout: STEP_DEADLINE_MS });
  await waitFor(([router]) => [...document.querySelectorAll('tr[data-router]')]
    .some((tr) => tr.getAttribute('data-router') === router), [args.router], STEP_DEADLINE_MS,
  `router row ${args.router}`,
  () => `routers=[${[...document.querySelectorAll('tr[data-router]')].map((tr) => tr.getAttribute('data-router')).join(', ')}]`);

  // Services view: the service and its server UP.
  await page.click('#nav a[data-nav="services"]', { timeout: STEP_DEADLINE_MS });
  const svcArg = [args.service, args.server];
  await waitFor(findService, svcArg, STEP_DEADLINE_MS, `service ${args.service}`, describeServices);
  await waitFor((a) => {
    const block = [...document.querySelectorAll('[data-service]')].find((el) => el.getAttribute('data-service') === a[0]);
    const row = block && [...block.querySelectorAll('tr[data-server-url]')].find((tr) => tr.getAttribute('data-server-url') === a[1]);
    return !!row && row.getAttribute('data-health') === 'UP';
  }, svcArg, STEP_DEADLINE_MS, `server ${args.server} UP`, describeServices);

  if (args.warned) {
    await waitFor(([service]) => {
      const block = [...document.querySelectorAll('[data-service]')].find((el) => el.getAttribute('data-service') === service);
      const note = block && block.querySelector('ul.warnings li');
      return !!note && block.getAttribute('data-status') === 'warning' && /insecure_skip_verify/.test(note.textContent);
    }, [args.warned], STEP_DEADLINE_MS, `warning on service ${args.warned}`, describeServices);
  }

  // Errors view: a refused label is an error row, an ignored one a warning row,
  // each with its badge.
  if (args.refused || args.ignored) {
    await page.click('#nav a[data-nav="errors"]', { timeout: STEP_DEADLINE_MS });
    const want = [['error', args.refused], ['warning', args.ignored]].filter(([, l]) => l);
    await waitFor((rows) => rows.every(([severity, label]) => [...document.querySelectorAll('tr[data-severity]')]
      .some((tr) => tr.getAttribute('data-severity') === severity && tr.getAttribute('data-label') === label &&
        tr.querySelector('.badge')?.textContent === severity)), want, STEP_DEADLINE_MS,
    `error rows ${JSON.stringify(want)}`,
    () => `rows=[${[...document.querySelectorAll('tr[data-severity]')].map((tr) => tr.getAttribute('data-severity') + ':' + tr.getAttribute('data-label')).join(', ')}]`);
    await page.screenshot({ path: args.screenshot.replace(/\.png$/, '') + '-errors.png', fullPage: true, timeout: STEP_DEADLINE_MS });
    await page.click('#nav a[data-nav="services"]', { timeout: STEP_DEADLINE_MS });
    await waitFor(findService, svcArg, STEP_DEADLINE_MS, `service ${args.service} again`, describeServices);
  }

  const rendersBefore = await page.evaluate(() => { window.__noReload = 1; return window.__gantryRenders; });
  if (!Number.isInteger(rendersBefore)) throw new Error(`window.__gantryRenders is ${rendersBefore}, not an integer`);
  out('READY');

  const t0 = await stopped;
  const left = DOWN_DEADLINE_MS - (performance.now() - t0);
  await waitFor((a) => {
    const block = [...document.querySelectorAll('[data-service]')].find((el) => el.getAttribute('data-service') === a[0]);
    const row = block && [...block.querySelectorAll('tr[data-server-url]')].find((tr) => tr.getAttribute('data-server-url') === a[1]);
    return !!row && row.getAttribute('data-health') === 'DOWN';
  }, svcArg, Math.floor(left), `server ${args.server} DOWN after STOPPED`, describeServices);
  const downAfter = Math.round(performance.now() - t0);
  if (downAfter > DOWN_DEADLINE_MS) throw new Error(`server DOWN only after ${downAfter} ms (deadline ${DOWN_DEADLINE_MS} ms)`);

  const after = await page.evaluate(() => ({ noReload: window.__noReload, renders: window.__gantryRenders }));
  if (after.noReload !== 1) throw new Error('the page reloaded (window.__noReload is gone)');
  if (!(after.renders > rendersBefore)) {
    throw new Error(`window.__gantryRenders did not increase (${rendersBefore} -> ${after.renders})`);
  }
  out(`DOWN_AFTER_MS ${downAfter}`);

  await page.screenshot({ path: args.screenshot, fullPage: true, timeout: STEP_DEADLINE_MS });
  if (finished) return; // a failure (hard timeout, browser gone) got there first
  finished = true;
  out('OK');
  await cleanup();
  process.exit(0);
}

const hard = setTimeout(() => fail(`overall timeout of ${HARD_TIMEOUT_MS / 1000} s`), HARD_TIMEOUT_MS);
process.on('SIGTERM', () => fail('killed (SIGTERM)'));
process.on('SIGINT', () => fail('interrupted (SIGINT)'));
main().catch((e) => fail(e && e.message ? e.message : String(e))).finally(() => clearTimeout(hard));
