// Runs the unchanged jsforce client (npm, pinned in package.json) against `provost emulator`:
// login (web server flow and JWT bearer), paged queries, create/update/delete, and an expired
// session that jsforce must recover from with its refresh token.
//
//   node tests/third_party/jsforce/check.mjs target/debug/provost
import { spawn } from 'node:child_process';
import { createSign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import jsforce from 'jsforce';

const binary = process.argv[2];
if (!binary) {
  console.error('usage: node check.mjs PATH_TO_PROVOST');
  process.exit(2);
}

const emulator = spawn(binary, ['emulator', '--preset', 'medium', '--seed', '7'], { stdio: ['ignore', 'pipe', 'inherit'] });
const info = await new Promise((resolve, reject) => {
  createInterface({ input: emulator.stdout }).once('line', (line) => resolve(JSON.parse(line)));
  emulator.once('exit', (code) => reject(new Error(`emulator exited with ${code}`)));
});

let passed = 0;
let failed = 0;
async function check(name, body) {
  try {
    await body();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (err) {
    failed += 1;
    console.log(`FAIL ${name}: ${err.stack || err}`);
  }
}
function assert(condition, message) {
  if (!condition) throw new Error(message);
}

const redirectUri = 'http://127.0.0.1:9/callback';
const oauth2 = new jsforce.OAuth2({ loginUrl: info.login_url, clientId: info.client_id, clientSecret: info.client_secret, redirectUri });
let conn;
let refreshed = 0;

await check('web server flow login (authorize page, code exchange)', async () => {
  const authorizeUrl = new URL(oauth2.getAuthorizationUrl({ scope: 'api refresh_token', state: 'jsforce-state' }));
  const page = await fetch(authorizeUrl);
  assert(page.status === 200, `authorize page answered ${page.status}`);
  const form = new URLSearchParams(authorizeUrl.searchParams);
  form.set('username', info.username);
  form.set('password', info.password);
  form.set('decision', 'allow');
  const submitted = await fetch(new URL('/services/oauth2/authorize', info.login_url), { method: 'POST', body: form, redirect: 'manual' });
  const location = new URL(submitted.headers.get('location'));
  assert(location.searchParams.get('state') === 'jsforce-state', 'state passed back');
  conn = new jsforce.Connection({ oauth2, version: '62.0' });
  conn.on('refresh', () => { refreshed += 1; });
  const user = await conn.authorize(location.searchParams.get('code'));
  assert(conn.accessToken && conn.refreshToken, 'access and refresh tokens');
  assert(conn.instanceUrl === info.instance_url, `instance URL ${conn.instanceUrl}`);
  assert(user.id.startsWith('005'), `user id ${user.id}`);
});

await check('JWT bearer login', async () => {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const unsigned = `${b64({ alg: 'RS256' })}.${b64({ iss: info.client_id, sub: info.username, aud: info.login_url, exp: Math.floor(Date.now() / 1000) + 180 })}`;
  const signature = createSign('RSA-SHA256').update(unsigned).sign(readFileSync(info.private_key_path, 'utf8')).toString('base64url');
  const jwtConn = new jsforce.Connection({ oauth2: { loginUrl: info.login_url, clientId: info.client_id }, version: '62.0' });
  await jwtConn.authorize({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: `${unsigned}.${signature}` });
  const result = await jwtConn.query('SELECT Id FROM Organization');
  assert(result.totalSize === 1, 'one Organization row');
});

await check('paged query follows nextRecordsUrl to the end', async () => {
  const result = await conn.query('SELECT Id, Username, Profile.Name FROM User', { autoFetch: true, maxFetch: 100000 });
  const ids = new Set(result.records.map((r) => r.Id));
  assert(result.totalSize > 2000, `more than one page: ${result.totalSize}`);
  assert(result.records.length === result.totalSize, `fetched ${result.records.length} of ${result.totalSize}`);
  assert(ids.size === result.totalSize, 'every record once');
  assert(result.records.every((r) => r.Profile && r.Profile.Name), 'parent relationship nested');
});

await check('create, update and delete records; a duplicate is refused', async () => {
  const [user] = (await conn.query("SELECT Id FROM User WHERE UserType = 'Standard' AND IsActive = true AND Profile.UserLicense.Name = 'Salesforce' LIMIT 1")).records;
  const sets = (await conn.query('SELECT Id FROM PermissionSet WHERE IsOwnedByProfile = false AND LicenseId = null AND Type = \'Regular\'')).records;
  const held = new Set((await conn.query(`SELECT PermissionSetId FROM PermissionSetAssignment WHERE AssigneeId = '${user.Id}'`)).records.map((r) => r.PermissionSetId));
  const free = sets.find((s) => !held.has(s.Id));
  const created = await conn.sobject('PermissionSetAssignment').create({ AssigneeId: user.Id, PermissionSetId: free.Id });
  assert(created.success && created.id.startsWith('0Pa'), JSON.stringify(created));
  let duplicate;
  try {
    await conn.sobject('PermissionSetAssignment').create({ AssigneeId: user.Id, PermissionSetId: free.Id });
  } catch (err) {
    duplicate = err;
  }
  assert(duplicate && duplicate.errorCode === 'DUPLICATE_VALUE', `duplicate refused: ${duplicate && duplicate.errorCode}`);
  const updated = await conn.sobject('User').update({ Id: user.Id, Department: 'Checked by jsforce' });
  assert(updated.success, JSON.stringify(updated));
  const [reread] = (await conn.query(`SELECT Department FROM User WHERE Id = '${user.Id}'`)).records;
  assert(reread.Department === 'Checked by jsforce', 'update visible');
  const deleted = await conn.sobject('PermissionSetAssignment').destroy(created.id);
  assert(deleted.success, JSON.stringify(deleted));
});

await check('an expired session is refreshed and the call retried', async () => {
  const before = conn.accessToken;
  const expired = await fetch(`${info.admin_url}/sessions/expire`, { method: 'POST' });
  assert(expired.status === 204, 'sessions expired through the admin path');
  const result = await conn.query('SELECT Id FROM Organization');
  assert(result.totalSize === 1, 'the query succeeded after the refresh');
  assert(refreshed === 1 && conn.accessToken !== before, `refreshed ${refreshed} time(s)`);
});

emulator.kill('SIGTERM');
console.log(`jsforce: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
