"""A small Chrome DevTools protocol client, and a PNG codec, for the
browser tests.  Python standard library only.

The browser is started with --remote-debugging-pipe: it reads commands
from its descriptor 3 and writes answers and events to its descriptor 4,
each message one JSON object ended by a NUL byte.  No WebSocket is needed.

    b = Browser('/usr/bin/chromium', profile_dir)
    page = b.new_page(width=320, height=240)
    page.goto('http://127.0.0.1:8080/x.html')
    page.wait('window.ready === true')
    png = page.screenshot()          # (width, height, rows of RGB bytes)
    b.close()
"""

import base64
import fcntl
import json
import os
import struct
import subprocess
import threading
import time
import zlib

# The flags every run uses; the profile directory is new and empty.
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu',
         '--disable-background-networking', '--no-first-run',
         '--disable-component-update', '--disable-sync']
CALL_TIMEOUT = 30       # seconds a single protocol call may take


class CDPError(Exception):
    pass


def _high(fd):
    """fd moved to a descriptor number of at least 10."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Browser:
    """One browser process and its protocol pipe."""

    def __init__(self, exe, profile, log, extra=()):
        to_r, to_w = os.pipe()          # we write commands, it reads (3)
        from_r, from_w = os.pipe()      # it writes answers (4), we read
        # Its ends must not sit at 3 or 4 already, or the shell's
        # redirections below would close them.
        to_r, from_w = [_high(fd) for fd in (to_r, from_w)]
        args = [exe] + FLAGS + ['--user-data-dir=' + profile,
                                '--remote-debugging-pipe'] + list(extra)
        # The shell puts the two pipe ends at descriptors 3 and 4.
        script = 'exec "$@" 3<&%d 4>&%d %d<&- %d>&-' % (
            to_r, from_w, to_r, from_w)
        self.proc = subprocess.Popen(
            ['bash', '-c', script, 'chromium'] + args,
            pass_fds=(to_r, from_w), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(log, 'ab'))
        os.close(to_r)
        os.close(from_w)
        self.wfd = to_w
        self.rfd = from_r
        self.lock = threading.Lock()
        self.cond = threading.Condition()
        self.next_id = 0
        self.answers = {}
        self.events = []                # (sessionId, method, params)
        self.dead = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        buf = b''
        while True:
            try:
                chunk = os.read(self.rfd, 1 << 16)
            except OSError:
                chunk = b''
            if not chunk:
                with self.cond:
                    self.dead = True
                    self.cond.notify_all()
                return
            buf += chunk
            while b'\0' in buf:
                raw, buf = buf.split(b'\0', 1)
                msg = json.loads(raw.decode('utf-8'))
                with self.cond:
                    if 'id' in msg:
                        self.answers[msg['id']] = msg
                    else:
                        self.events.append((msg.get('sessionId'),
                                            msg.get('method'),
                                            msg.get('params', {})))
                    self.cond.notify_all()

    def call(self, method, params=None, session=None):
        """Send one command and return its result (raises CDPError)."""
        with self.lock:
            self.next_id += 1
            mid = self.next_id
            msg = {'id': mid, 'method': method, 'params': params or {}}
            if session:
                msg['sessionId'] = session
            data = json.dumps(msg).encode('utf-8') + b'\0'
            while data:
                data = data[os.write(self.wfd, data):]
        deadline = time.time() + CALL_TIMEOUT
        with self.cond:
            while mid not in self.answers:
                if self.dead:
                    raise CDPError('browser exited during ' + method)
                left = deadline - time.time()
                if left <= 0:
                    raise CDPError('no answer to ' + method)
                self.cond.wait(left)
            ans = self.answers.pop(mid)
        if 'error' in ans:
            raise CDPError('%s: %s' % (method, ans['error'].get('message')))
        return ans.get('result', {})

    def events_of(self, session, method):
        with self.cond:
            return [p for s, m, p in self.events
                    if s == session and m == method]

    def new_page(self, width=320, height=240):
        tid = self.call('Target.createTarget',
                        {'url': 'about:blank'})['targetId']
        sid = self.call('Target.attachToTarget',
                        {'targetId': tid, 'flatten': True})['sessionId']
        page = Page(self, tid, sid)
        for domain in ('Page', 'Runtime', 'Network'):
            page.call(domain + '.enable')
        page.call('Emulation.setDeviceMetricsOverride',
                  {'width': width, 'height': height,
                   'deviceScaleFactor': 1, 'mobile': False})
        return page

    def close(self):
        try:
            self.call('Browser.close')
        except CDPError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.wfd)
        self.reader.join(5)
        os.close(self.rfd)


class Page:
    """One tab, attached in flat mode: commands carry its session id."""

    def __init__(self, browser, target, session):
        self.b = browser
        self.target = target
        self.session = session

    def call(self, method, params=None):
        return self.b.call(method, params, self.session)

    def goto(self, url, timeout=20):
        """Navigate and wait until the new document has run its
        scripts (readyState past "loading")."""
        self.call('Page.navigate', {'url': url})
        return self.wait('location.href === %s && document.readyState !== '
                         '"loading"' % json.dumps(url), timeout)

    def eval(self, expr):
        """The value of a JavaScript expression (JSON-able), or raise."""
        r = self.call('Runtime.evaluate', {'expression': expr,
                                           'returnByValue': True,
                                           'awaitPromise': True})
        if 'exceptionDetails' in r:
            d = r['exceptionDetails']
            raise CDPError('%s: %s' % (expr, d.get('exception', {}).get(
                'description', d.get('text'))))
        return r['result'].get('value')

    def wait(self, expr, timeout=20, step=0.05):
        """Wait until expr is truthy; return its value, or None."""
        deadline = time.time() + timeout
        while True:
            try:
                v = self.eval(expr)
            except CDPError:
                v = None
            if v:
                return v
            if time.time() >= deadline:
                return None
            time.sleep(step)

    def requests(self, part):
        """URLs of the requests this page made whose URL contains part."""
        return [p['request']['url']
                for p in self.b.events_of(self.session,
                                          'Network.requestWillBeSent')
                if part in p['request']['url']]

    def responses(self, part):
        """(url, status, request id) of the answers this page got to
        requests whose URL contains part."""
        return [(p['response']['url'], p['response']['status'],
                 p['requestId'])
                for p in self.b.events_of(self.session,
                                          'Network.responseReceived')
                if part in p['response']['url']]

    def body(self, request_id):
        """The body of an answer (text), or None when the browser no
        longer has it."""
        try:
            r = self.call('Network.getResponseBody',
                          {'requestId': request_id})
        except CDPError:
            return None
        if r.get('base64Encoded'):
            return base64.b64decode(r['body']).decode('utf-8', 'replace')
        return r.get('body')

    def screenshot(self, save=None):
        """The page as decoded by png_decode; save: also write the PNG
        to this file."""
        r = self.call('Page.captureScreenshot', {'format': 'png'})
        data = base64.b64decode(r['data'])
        if save:
            with open(save, 'wb') as f:
                f.write(data)
        return png_decode(data)

    def navigations(self):
        """How many times the page's main frame has navigated (loads and
        reloads alike)."""
        return len([p for p in self.b.events_of(self.session,
                                                'Page.frameNavigated')
                    if not p['frame'].get('parentId')])

    def close(self):
        self.b.call('Target.closeTarget', {'targetId': self.target})


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def png_decode(data):
    """(width, height, rows): rows[y] is bytes of RGB triples.  Handles
    8-bit RGB and RGBA, non-interlaced: what the browser writes."""
    if data[:8] != b'\x89PNG\r\n\x1a\n':
        raise ValueError('not a PNG')
    pos, idat, w = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b'IHDR':
            w, h, depth, ctype, _, _, inter = struct.unpack('>IIBBBBB', body)
            if depth != 8 or ctype not in (2, 6) or inter:
                raise ValueError('unsupported PNG layout')
            bpp = 3 if ctype == 2 else 4
        elif kind == b'IDAT':
            idat.append(body)
        elif kind == b'IEND':
            break
    raw = zlib.decompress(b''.join(idat))
    stride = w * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 255
        elif f == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                up_left = prev[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + _paeth(left, prev[i], up_left)) & 255
        rows.append(bytes(line) if bpp == 3 else bytes(
            b for i in range(0, stride, 4) for b in line[i:i + 3]))
        prev = line
    return w, h, rows


def png_encode(w, h, rgb):
    """A solid w x h PNG of colour rgb (a 3-tuple)."""
    row = b'\0' + bytes(rgb) * w

    def chunk(kind, body):
        return (struct.pack('>I', len(body)) + kind + body +
                struct.pack('>I', zlib.crc32(kind + body) & 0xffffffff))
    return (b'\x89PNG\r\n\x1a\n' +
            chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)) +
            chunk(b'IDAT', zlib.compress(row * h)) + chunk(b'IEND', b''))


def png_diff(a, b):
    """Bounding box (x0, y0, x1, y1), exclusive ends, of the pixels that
    differ between two decoded images of one size, or None."""
    (w, h, ra), (_, _, rb) = a, b
    box = None
    for y in range(h):
        if ra[y] == rb[y]:
            continue
        xs = [x for x in range(w) if ra[y][3 * x:3 * x + 3] !=
              rb[y][3 * x:3 * x + 3]]
        x0, x1 = xs[0], xs[-1] + 1
        if box is None:
            box = [x0, y, x1, y + 1]
        else:
            box = [min(box[0], x0), box[1], max(box[2], x1), y + 1]
    return tuple(box) if box else None


def png_pixel(img, x, y):
    w, h, rows = img
    return tuple(rows[y][3 * x:3 * x + 3])
