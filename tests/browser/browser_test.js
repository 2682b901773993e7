// Chromium against duplex-echo: the seed's sample page driven like a user would, and the browser's own
// WebSocket (its framing, masking, fragmentation and permessage-deflate) against our server. And
// Chromium against duplex-chat: three pages, two in one room and one in another, chatting through the
// chat page (the message-driven API and topics; shared, once-compressed frames into Chromium's inflater).
//
//   node tests/browser/browser_test.js --echo build/examples/duplex-echo --chat build/examples/duplex-chat
//                                      [--chromium /usr/bin/chromium]
//
// Starts its own servers on free loopback ports (duplex-echo plain, with --compression, and on the
// message-driven API with --api handlers --compression; duplex-chat with --compression) and stops them by PID. Every wait is bounded; exit status 1 on any failure.
'use strict';

const { chromium } = require('playwright-core');
const { spawn } = require('node:child_process');
const assert = require('node:assert/strict');

function argument(name, fallback) {
    const i = process.argv.indexOf(name);
    return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const echoPath = argument('--echo');
const chatPath = argument('--chat');
const chromiumPath = argument('--chromium', '/usr/bin/chromium');
if (!echoPath || !chatPath) {
    console.error('usage: browser_test.js --echo PATH/duplex-echo --chat PATH/duplex-chat [--chromium PATH]');
    process.exit(2);
}

// Starts duplex-echo (or `program`) on a free port and resolves with { process, url } once it says where
// it listens.
function startEcho(extraArgs, program = echoPath) {
    return new Promise((resolve, reject) => {
        const child = spawn(program, ['--urls', 'http://127.0.0.1:0', ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
        let output = '';
        const timer = setTimeout(() => reject(new Error(program + ' did not start: ' + output)), 10000);
        const onData = data => {
            output += data;
            const match = /listening on (http:\/\/\S+)/.exec(output);
            if (match) {
                clearTimeout(timer);
                resolve({ process: child, url: match[1] });
            }
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', onData);
        child.on('exit', code => reject(new Error(program + ' exited with ' + code + ': ' + output)));
    });
}

// Ends a server we started, by its PID, and checks that it shuts down cleanly.
function stopEcho(server) {
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => { server.process.kill('SIGKILL'); reject(new Error('duplex-echo did not stop')); }, 10000);
        server.process.removeAllListeners('exit');
        server.process.on('exit', (code, signal) => {
            clearTimeout(timer);
            if (code === 0) resolve();
            else reject(new Error('duplex-echo exited with ' + code + (signal ? ' (' + signal + ')' : '')));
        });
        server.process.kill('SIGTERM');
    });
}

// The sample page as a user drives it: the URL box is prefilled, Connect, Send, Close Socket, and the
// log shows the echo escaped (the peer's text is never parsed as HTML).
async function samplePage(page, server) {
    await page.goto(server.url + '/');
    const wsUrl = server.url.replace('http://', 'ws://') + '/ws';
    assert.equal(await page.inputValue('#connectionUrl'), wsUrl);
    await page.click('#connectButton');
    await page.waitForFunction(() => document.getElementById('stateLabel').textContent === 'Open', null, { timeout: 5000 });
    const message = 'Hello <b>duplex</b> & ünïcødé ✓ 😀';
    await page.fill('#sendMessage', message);
    await page.click('#sendButton');
    await page.waitForFunction(() => document.querySelectorAll('#commsLog tr').length >= 3, null, { timeout: 5000 });
    const rows = await page.$$eval('#commsLog tr', rows => rows.map(row => [...row.cells].map(cell => cell.textContent)));
    assert.deepEqual(rows[0], ['Connection opened']);
    assert.deepEqual(rows.slice(1, 3).sort(), [['Client', 'Server', message], ['Server', 'Client', message]].sort());
    assert.equal(await page.$$eval('#commsLog b', elements => elements.length), 0, 'the echoed text was parsed as HTML');
    await page.click('#closeButton');
    await page.waitForFunction(() => document.getElementById('stateLabel').textContent === 'Closed', null, { timeout: 5000 });
    const last = await page.$eval('#commsLog tr:last-child', row => row.textContent);
    assert.equal(last, 'Connection closed. Code: 1000. Reason: Closing from client');
}

// Runs in the page: the browser's WebSocket sends each payload and checks the echo byte for byte.
// Returns what the browser negotiated and how the close went.
async function roundTrips(page, wsUrl) {
    return page.evaluate(async url => {
        const withTimeout = (promise, ms, what) => Promise.race([promise,
            new Promise((_, reject) => setTimeout(() => reject(new Error('timed out: ' + what)), ms))]);
        const socket = new WebSocket(url);
        socket.binaryType = 'arraybuffer';
        const incoming = [];
        let waiter = null;
        socket.onmessage = event => { incoming.push(event.data); if (waiter) { waiter(); waiter = null; } };
        const closed = new Promise(resolve => { socket.onclose = event => resolve({ code: event.code, reason: event.reason, wasClean: event.wasClean }); });
        await withTimeout(new Promise((resolve, reject) => { socket.onopen = resolve; socket.onerror = () => reject(new Error('socket error')); }), 5000, 'open');
        const next = () => withTimeout(new Promise(resolve => {
            if (incoming.length) resolve(incoming.shift());
            else waiter = () => resolve(incoming.shift());
        }), 20000, 'echo');

        // Text of every length form (7-bit, 16-bit, 64-bit), with multi-byte characters across
        // the points where frames and reads split; binary of every byte value; 1 MiB of each.
        const text = n => { let s = ''; const alphabet = 'aé€😀{"user":42} '; while (s.length < n) s += alphabet; return s.slice(0, n); };
        const bytes = n => { const b = new Uint8Array(n); let x = 12345; for (let i = 0; i < n; ++i) { x = (x * 1103515245 + 12345) >>> 0; b[i] = x >>> 24; } return b; };
        const failures = [];
        for (const n of [0, 1, 125, 126, 127, 65535, 65536, 1 << 20]) {
            const sent = text(n);
            socket.send(sent);
            const got = await next();
            if (got !== sent) failures.push('text of ' + n + ' UTF-16 units came back different');
            const payload = bytes(n);
            socket.send(payload);
            const echoed = new Uint8Array(await next());
            if (echoed.length !== n || echoed.some((v, i) => v !== payload[i])) failures.push('binary of ' + n + ' bytes came back different');
        }
        // Many messages in flight at once come back complete and in order.
        for (let i = 0; i < 200; ++i) socket.send('message ' + i);
        for (let i = 0; i < 200; ++i) {
            const got = await next();
            if (got !== 'message ' + i) { failures.push('message ' + i + ' came back as ' + got); break; }
        }
        const extensions = socket.extensions;
        // The echo answers our close with the same code and reason.
        socket.close(4000, 'done ✓');
        const close = await withTimeout(closed, 5000, 'close');
        return { failures, extensions, close };
    }, wsUrl);
}

// The chat page as three users drive it: Ada and Bob in room "alpha", Cy in "beta". Every message
// reaches every member of its room, the sender included, shown as text (never parsed as HTML), and
// nothing crosses rooms; members come and go in the list and the log.
async function chatRooms(browser, server) {
    const context = await browser.newContext();
    try {
        const join = async (name, room) => {
            const page = await context.newPage();
            page.setDefaultTimeout(10000);
            await page.goto(server.url + '/');
            await page.fill('#name', name);
            await page.fill('#room', room);
            await page.click('#join button');
            await page.waitForFunction(() => !document.getElementById('text').disabled, null, { timeout: 5000 });
            return page;
        };
        const log = page => page.$$eval('#log div', lines => lines.map(line => line.textContent));
        const waitForLine = (page, text) => page.waitForFunction(
            expected => [...document.querySelectorAll('#log div')].some(line => line.textContent === expected), text, { timeout: 5000 });
        const say = async (page, text) => {
            await page.fill('#text', text);
            await page.press('#text', 'Enter');
        };
        const ada = await join('Ada', 'alpha');
        const bob = await join('Bob', 'alpha');
        const cy = await join('Cy', 'beta');
        await waitForLine(ada, 'Bob joined.');
        const fromAda = 'hello <b>Bob</b> & ünïcødé ✓ 😀 "quoted" \\ back';
        await say(ada, fromAda);
        await say(bob, 'hi Ada');
        await say(cy, 'beta only');
        for (let i = 0; i < 20; ++i) await say(bob, 'burst ' + i);
        for (const page of [ada, bob]) {
            await waitForLine(page, 'Ada: ' + fromAda);
            await waitForLine(page, 'Bob: hi Ada');
            await waitForLine(page, 'Bob: burst 19');
        }
        await waitForLine(cy, 'Cy: beta only');
        for (const page of [ada, bob]) {
            const lines = await log(page);
            assert.ok(!lines.some(line => line.includes('beta only')), 'a message crossed rooms: ' + lines);
            const burst = lines.filter(line => line.startsWith('Bob: burst '));
            assert.deepEqual(burst, Array.from({ length: 20 }, (_, i) => 'Bob: burst ' + i), 'each message once, in order');
            assert.equal(lines.filter(line => line === 'Ada: ' + fromAda).length, 1);
            assert.equal(await page.$$eval('#log b', elements => elements.length), 0, 'chat text was parsed as HTML');
            assert.equal(await page.textContent('#members'), 'In the room: Ada, Bob');
            assert.match(await page.evaluate(() => socket.extensions), /^permessage-deflate/);
        }
        const cyLines = await log(cy);
        assert.ok(!cyLines.some(line => line.startsWith('Ada: ') || line.startsWith('Bob: ')), 'a message crossed rooms: ' + cyLines);
        assert.equal(await cy.textContent('#members'), 'In the room: Cy');
        await bob.close();
        await waitForLine(ada, 'Bob left.');
        assert.equal(await ada.textContent('#members'), 'In the room: Ada');
    } finally {
        await context.close();
    }
}

async function main() {
    const plain = await startEcho([]);
    const compressed = await startEcho(['--compression']);
    const handlers = await startEcho(['--api', 'handlers', '--compression']);
    const chat = await startEcho(['--compression'], chatPath);
    const browser = await chromium.launch({
        executablePath: chromiumPath,
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking', '--disable-component-update',
               '--disable-sync', '--no-first-run'],
    });
    let failed = 0;
    const check = async (name, body) => {
        try {
            await body();
            console.log('PASS ' + name);
        } catch (error) {
            failed += 1;
            console.log('FAIL ' + name + ': ' + (error && error.stack || error));
        }
    };
    try {
        const page = await browser.newPage();
        page.setDefaultTimeout(10000);
        await check('the sample page: connect, send, escaped echo, close', () => samplePage(page, plain));
        await check('Chromium round trips without compression, and the close handshake', async () => {
            await page.goto(plain.url + '/');
            const result = await roundTrips(page, plain.url.replace('http://', 'ws://') + '/ws');
            assert.deepEqual(result.failures, []);
            assert.equal(result.extensions, '', 'the plain echo must decline permessage-deflate');
            assert.deepEqual(result.close, { code: 4000, reason: 'done ✓', wasClean: true });
        });
        await check('Chromium round trips with permessage-deflate (duplex-echo --compression)', async () => {
            await page.goto(compressed.url + '/');
            const result = await roundTrips(page, compressed.url.replace('http://', 'ws://') + '/ws');
            assert.deepEqual(result.failures, []);
            assert.match(result.extensions, /^permessage-deflate/, 'Chromium offers permessage-deflate and the server accepts it');
            assert.deepEqual(result.close, { code: 4000, reason: 'done ✓', wasClean: true });
        });
        await check('the sample page with compression on', () => samplePage(page, compressed));
        await check('the message-driven API (duplex-echo --api handlers --compression): the sample page and round trips', async () => {
            await samplePage(page, handlers);
            const result = await roundTrips(page, handlers.url.replace('http://', 'ws://') + '/ws');
            assert.deepEqual(result.failures, []);
            assert.match(result.extensions, /^permessage-deflate/);
            assert.deepEqual(result.close, { code: 4000, reason: 'done ✓', wasClean: true });
        });
        await check('duplex-chat: two rooms, three Chromium pages, every message to its room only, once, in order',
                    () => chatRooms(browser, chat));
    } finally {
        await browser.close();
        for (const server of [plain, compressed, handlers, chat]) {
            await check(server.url + ' shuts down cleanly on SIGTERM', () => stopEcho(server));
        }
    }
    console.log(failed === 0 ? 'browser: all passed' : 'browser: ' + failed + ' failed');
    process.exit(failed === 0 ? 0 : 1);
}

main().catch(error => {
    console.error(error);
    process.exit(1);
});
