// Browser tests of the melv web app: sign in, deploy and activate a site, change the working mode,
// see an alert with its remediation after an injected fault. Usage:
//   BASE=http://127.0.0.1:18080 ADMIN_EMAIL=admin@localhost ADMIN_PASSWORD=... node e2e.mjs [SHOT_DIR]
// Prints one line per test ("ok NAME" / "not ok NAME: reason") and exits non-zero on failure.
import { chromium } from 'playwright-core';

const BASE = process.env.BASE ?? 'http://127.0.0.1:18080';
const SHOTS = process.argv[2] ?? '/tmp';
const run = Date.now();
const installer = { email: `inst${run}@example.com`, password: 'installer-pass-1' };
const owner = { email: `owner${run}@example.com`, password: 'owner-pass-123' };

async function api(method, path, token, body) {
  const r = await fetch(BASE + path, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

let passed = 0, failed = 0;
async function test(name, fn) {
  try { await fn(); passed++; console.log(`ok ${name}`); }
  catch (e) { failed++; console.log(`not ok ${name}: ${e.message.split('\n')[0]}`); }
}
function expect(cond, what) { if (!cond) throw new Error(what); }

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
// A phone-sized screen (360 x 740 CSS px, a common Android size).
const context = await browser.newContext({ viewport: { width: 360, height: 740 } });
const page = await context.newPage();
let siteId, gatewayToken;

async function signIn(who) {
  await page.goto(BASE + '/login');
  await page.getByLabel('E-mail').fill(who.email);
  await page.getByLabel('Password').fill(who.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(BASE + '/');
}

await test('sign in', async () => {
  const admin = await api('POST', '/api/login', null, { email: process.env.ADMIN_EMAIL, password: process.env.ADMIN_PASSWORD });
  await api('POST', '/api/accounts', admin.token, { ...installer, name: 'Ina Installer', role: 'installer' });
  await page.goto(BASE + '/');
  expect(page.url().endsWith('/login'), 'anonymous visitor is sent to the sign-in page');
  await page.getByLabel('E-mail').fill(installer.email);
  await page.getByLabel('Password').fill('wrong-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  expect(await page.getByRole('alert').textContent() === 'wrong e-mail or password', 'wrong password refused');
  await signIn(installer);
  expect((await page.locator('h1').textContent()) === 'Sites', 'site list shown');
  await page.screenshot({ path: `${SHOTS}/web-sites.png`, fullPage: true });
});

await test('deploy and activate a site', async () => {
  await page.getByRole('link', { name: 'Deploy a new site' }).click();
  await page.getByLabel('Site name').fill('Casa Rossi');
  await page.getByLabel('Grid connection').selectOption('1');
  await page.getByLabel('Country').selectOption('DE');
  await page.getByRole('button', { name: 'Create site' }).click();
  siteId = page.url().match(/sites\/(\d+)\/deploy/)[1];
  await page.getByLabel('Serial number').fill(`GW${run}`);
  await page.getByLabel('Device').selectOption('gateway');
  // The gateway's claim code (its label; `melv gateway --print-claim`): it signs in with it.
  const claim = Array.from({ length: 20 }, () => '0123456789ABCDEFGHJKMNPQRSTVWXYZ'[Math.floor(Math.random() * 32)]).join('');
  await page.getByLabel(/Claim code/).fill(claim);
  await page.getByRole('button', { name: 'Add device' }).click();
  const notice = await page.getByRole('status').textContent();
  expect(notice.includes('bound with its claim code'), 'gateway bound with its claim code');
  gatewayToken = claim;
  for (const b of [`BA${run}`, `BB${run}`]) {
    await page.getByLabel('Serial number').fill(b);
    await page.getByLabel('Device').selectOption('battery');
    await page.getByRole('button', { name: 'Add device' }).click();
  }
  await page.getByLabel('Measured voltage L-N (V)').fill('231');
  await page.getByRole('button', { name: 'Record checks' }).click();
  expect((await page.getByRole('status').textContent()).startsWith('Checks passed'), 'checks pass');
  await page.getByRole('button', { name: 'Activate site' }).click();
  expect((await page.getByRole('status').textContent()).startsWith('Site activated'), 'activated');
  await page.getByLabel("Owner's e-mail").fill(owner.email);
  await page.getByLabel("Owner's name (new account)").fill('Olga Owner');
  await page.getByLabel('Initial password (new account, 8+ characters)').fill(owner.password);
  await page.getByRole('button', { name: 'Hand over' }).click();
  expect((await page.getByRole('status').textContent()).startsWith('Handed over'), 'handed over');
  await page.screenshot({ path: `${SHOTS}/web-deploy.png`, fullPage: true });
});

await test('change the working mode', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await signIn(owner);
  await page.goto(`${BASE}/sites/${siteId}/settings`);
  await page.getByLabel('Time of use (TOU)').check();
  // TOU without a period is refused with the manual's rule.
  await page.getByRole('button', { name: 'Save settings' }).click();
  expect((await page.getByRole('alert').textContent()).includes('at least one charging or discharging period'), 'empty TOU refused');
  await page.getByLabel('Time of use (TOU)').check();
  await page.locator('#weekday-0-start').fill('22:00');
  await page.locator('#weekday-0-end').fill('06:00');
  await page.locator('#weekday-0-kind').selectOption('charge');
  await page.getByRole('button', { name: 'Save settings' }).click();
  expect((await page.getByRole('status').textContent()).startsWith('Saved as version 1'), 'saved');
  const s = await api('GET', `/api/gateway/GW${run}/settings`, gatewayToken);
  expect(s.settings.mode === 'time_of_use' && s.settings.tou.weekday[0].start === '22:00', 'gateway receives TOU');
  await page.screenshot({ path: `${SHOTS}/web-settings.png`, fullPage: true });
});

await test('see an alert with its remediation after a fault', async () => {
  const now = Date.now();
  await api('POST', '/api/ingest', gatewayToken, {
    gateway_serial: `GW${run}`,
    points: [{ seq: 1, ts_ms: now, interval_s: 60, pv_w: 2500, load_w: 900, grid_w: -600, battery_w: -1000, soc: 0.64 }],
    batteries: [{ serial: `BA${run}`, ts_ms: now, soc: 0.64, power_w: -1000, soc_led: { state: 'solid_blue', percent: 64 }, status_led: 'quick_flash', lifecycle: 'fault' }],
    events: [{ seq: 1, ts_ms: now, device_serial: `BA${run}`, code: 53, active: true }],
  });
  await page.goto(`${BASE}/sites/${siteId}`);
  expect((await page.locator('.badge').textContent()) === 'Faulty', 'dashboard says Faulty');
  await page.screenshot({ path: `${SHOTS}/web-dashboard.png`, fullPage: true });
  await page.getByRole('link', { name: 'See the alert codes and what to do' }).click();
  expect(await page.getByRole('heading', { name: 'Code 53: Battery Overtemperature' }).isVisible(), 'alert 53 shown');
  expect(await page.getByRole('heading', { name: 'What to do' }).first().isVisible(), 'solutions shown');
  await page.screenshot({ path: `${SHOTS}/web-alerts.png`, fullPage: true });
  await page.goto(`${BASE}/sites/${siteId}/history?resolution=5min`);
  expect(await page.locator('svg[role=img]').count() === 1, 'history chart drawn');
  await page.screenshot({ path: `${SHOTS}/web-history.png`, fullPage: true });
});

await browser.close();
console.log(`web: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
