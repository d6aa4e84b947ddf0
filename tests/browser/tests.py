"""The browser tests proper, driven by tests/browser/run.sh.

run.sh starts a web server with the responders and these pages, then runs
this program with:
  BASE          the server's URL (http://127.0.0.1:PORT)
  PUSHCTL       the pushctl to publish with (PUSHCGI_DB set for it)
  PUSHCGI_DB    the message log, read here to see subscribers arrive
  CHROMIUM      the browser (default /usr/bin/chromium)
  WORK          a scratch directory
  HAVE_POLL     1 when push-poll is built, HAVE_PUBLISH likewise
  ONLY          optional: a comma-separated subset of the test names
                (img, order, script, chat, conn, gap, demo, close, pull,
                share)
  SHOTS         optional: a folder to keep the screenshots in (default
                WORK)
It prints "ok - ..." / "not ok - ..." lines and "# ..." notes.  To stop
or start the web server it prints "@stop" or "@start" and waits for
run.sh to answer one line on its stdin.
"""

import base64
import json
import os
import sqlite3
import subprocess
import sys
import time

# No __pycache__ in the source tree (it may be read-only, or shipped).
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cdp  # noqa: E402

BASE = os.environ['BASE']
PUSHCTL = os.environ['PUSHCTL']
WORK = os.environ['WORK']
CHROMIUM = os.environ.get('CHROMIUM', '/usr/bin/chromium')
HAVE_POLL = os.environ.get('HAVE_POLL') == '1'
HAVE_PUBLISH = os.environ.get('HAVE_PUBLISH') == '1'
ONLY = [t for t in os.environ.get('ONLY', '').split(',') if t]

WAIT = 30               # seconds any one expectation may take
FRAME_WAIT = 10         # seconds a published frame may take to show
NMSG = 200              # messages of the ordering test
DOWN_MSGS = 120         # of them, published while the server is down
IMG_X, IMG_Y, IMG_W, IMG_H = 100, 80, 64, 48    # see pages/t-img.html

failures = 0


def out(line):
    sys.stdout.write(line + '\n')
    sys.stdout.flush()


def ok(cond, what, why=''):
    global failures
    if cond:
        out('ok - ' + what)
    else:
        failures += 1
        out('not ok - ' + what + (' (' + why + ')' if why else ''))
    return cond


def note(text):
    out('# ' + text)


def server(cmd):
    """Ask run.sh to stop or start the web server; wait for it."""
    out('@' + cmd)
    answer = sys.stdin.readline().strip()
    if answer != 'done':
        raise RuntimeError('server %s failed: %s' % (cmd, answer))


def publish(channel, data, mtype=None, event=None):
    if isinstance(data, str):
        data = data.encode('utf-8')
    args = [PUSHCTL, 'send']
    if mtype:
        args += ['-t', mtype]
    if event:
        args += ['-e', event]
    subprocess.run(args + [channel, '-'], input=data, check=True,
                   stdout=subprocess.DEVNULL)


def url(path):
    return BASE + path


def connected(page, expr='window.opens > 0'):
    """Wait until the page's push connection is up: its open event for
    the streams; for long-poll, whose first answer may come only with a
    message, its first request sent."""
    deadline = time.time() + WAIT
    while time.time() < deadline:
        try:
            up = page.eval('!!(%s)' % expr)
        except cdp.CDPError:
            up = False
        if up or page.requests('/cgi-bin/push-poll'):
            time.sleep(0.3)     # the request reaches the responder
            return True
        time.sleep(0.05)
    return False


def registered(channel, n):
    """Wait until n streams or held polls are on channel in the log (its
    documented subscriptions table): a page that starts without a cursor
    gets what is published after the server registered its request, so
    a test publishes only then."""
    db = 'file:%s?mode=ro' % os.environ['PUSHCGI_DB']
    deadline = time.time() + WAIT
    while time.time() < deadline:
        try:
            with sqlite3.connect(db, uri=True, timeout=5) as c:
                k = c.execute('SELECT count(*) FROM subscriptions WHERE '
                              'channel = ?', (channel,)).fetchone()[0]
            c.close()
            if k >= n:
                return True
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    note('%d subscribers on %s not seen in the log' % (n, channel))
    return False


# --- (1) a mixed stream in an <img> ---------------------------------------

def color_at(page, rgb):
    """A fresh screenshot if the whole image rectangle is rgb in it, else
    None."""
    img = page.screenshot()
    for y in range(IMG_Y, IMG_Y + IMG_H):
        row = img[2][y]
        if row[3 * IMG_X:3 * (IMG_X + IMG_W)] != bytes(rgb) * IMG_W:
            return None
    return img


def test_img(b):
    colors = [(220, 30, 30), (30, 160, 60), (40, 60, 200), (230, 200, 20)]
    frames = [cdp.png_encode(IMG_W, IMG_H, c) for c in colors]
    publish('bimg', frames[0], 'image/png')
    page = b.new_page()
    page.goto(url('/t-img.html?channel=bimg'))
    page.wait('window.ready === true')
    deadline = time.time() + FRAME_WAIT
    shot = None
    while shot is None and time.time() < deadline:
        shot = color_at(page, colors[0])
    ok(shot is not None, 'mixed: <img> shows the latest frame at once')
    if shot is None:
        page.close()
        return
    worst, shown, only_img = 0, 0, True
    for rgb, frame in zip(colors[1:], frames[1:]):
        before = shot
        t0 = time.time()
        publish('bimg', frame, 'image/png')
        shot = None
        while shot is None and time.time() < t0 + FRAME_WAIT:
            shot = color_at(page, rgb)
        if shot is None:
            break
        shown += 1
        worst = max(worst, time.time() - t0)
        box = cdp.png_diff(before, shot)
        if box is None or box != (IMG_X, IMG_Y, IMG_X + IMG_W,
                                  IMG_Y + IMG_H):
            only_img = False
            note('changed region %s, image at %s' % (
                box, (IMG_X, IMG_Y, IMG_X + IMG_W, IMG_Y + IMG_H)))
    ok(shown == len(frames) - 1,
       'mixed: <img> shows each newly published frame (%d of %d)' %
       (shown, len(frames) - 1), 'a frame did not show within %d s: one '
       'frame behind?' % FRAME_WAIT)
    if shown:
        note('slowest frame appeared %.0f ms after its publish '
             '(screenshot included)' % (worst * 1000))
    ok(shown and only_img,
       'mixed: screenshots before and after a publish differ exactly '
       'where the image is')
    page.close()


# --- (2) every message exactly once and in order, across a restart --------

NAMES = {'sse': 'EventSource', 'script': 'iframe script', 'poll': 'long-poll'}


def got(page):
    return page.eval('got.map(function (m) { return [m.id, m.data]; })')


def test_order(b):
    kinds = ['sse', 'script'] + (['poll'] if HAVE_POLL else [])
    if not HAVE_POLL:
        ok(False, 'long-poll page: 200 messages exactly once across a '
           'restart', 'push-poll missing')
    pages = {}
    for k in kinds:
        pages[k] = b.new_page()
        # A short heartbeat: a script stream cut short is noticed only
        # by its missing heartbeats.
        pages[k].goto(url('/t-push.html?channels=border&heartbeat=2&'
                          'transport=' + k))
    for k, page in pages.items():
        if not connected(page):
            note(k + ' page did not connect')
    registered('border', len(pages))
    # More published while the server is down than one long-poll answer
    # holds (100): the answer after the restart says "more".
    down, up = NMSG // 4 + 1, NMSG // 4 + DOWN_MSGS + 1
    for i in range(1, NMSG + 1):
        if i == 2:
            # Each page holds a cursor before the server goes away.
            for page in pages.values():
                page.wait('got.length > 0', WAIT)
        if i == down:
            server('stop')
        if i == up:
            server('start')
        publish('border', 'm%d' % i)
    want = ['m%d' % i for i in range(1, NMSG + 1)]
    for k, page in pages.items():
        page.wait('got.length >= %d' % NMSG, WAIT * 2)
        time.sleep(1)           # room for a late duplicate to show
        g = got(page)
        ids = [x[0] for x in g]
        data = [x[1] for x in g]
        reconnects = page.eval('opens')
        exact = data == want and all(a < b for a, b in zip(ids, ids[1:]))
        why = ''
        if not exact:
            missing = sorted(set(want) - set(data), key=lambda s: int(s[1:]))
            why = '%d received, %d distinct, missing %s' % (
                len(data), len(set(data)), missing[:10])
        note('%s page: %d connections, %d errors seen' % (
            k, reconnects, page.eval('errors')))
        if k == 'poll':
            more = [r for r in page.responses('/cgi-bin/push-poll')
                    if '"more":true' in (page.body(r[2]) or '')]
            note('poll page: %d answers said "more"' % len(more))
        ok(exact and reconnects >= 2,
           '%s page: %d messages exactly once and in order across a '
           'server restart' % (NAMES[k], NMSG),
           why or 'it never reconnected (%d opens)' % reconnects)
        page.close()


# --- (3) the iframe script transport ---------------------------------------

EVIL = ('</script><script>parent.pwned=1;window.pwned=1</script>'
        '"quotes" \'single\' \\ <!-- --> & \u2028 \u00e9\u6f22 end')
BINARY = bytes([0, 1, 2, 200, 255, 13, 10, 0x80])


def test_script(b):
    bare = b.new_page()
    bare.goto(url('/t-script.html?channel=bscript'))
    lib = b.new_page()
    lib.goto(url('/t-push.html?channels=bscript&transport=script'))
    handle = '/^[0-9]+\\.[0-9a-z]+$/.test(%s)'
    c1 = bare.wait('calls.length > 0 && ' + handle % 'calls[0].stream',
                   WAIT)
    c2 = lib.wait('opens > 0 && ' + handle % 'p.stream', WAIT)
    ok(c1 and c2, 'script: the stream starts with {"stream": "ID.SECRET"},'
       ' push.js keeps it as p.stream', repr(bare.eval('calls[0]')))
    registered('bscript', 2)
    sent = ['plain one', EVIL, 'line\nbreak\r\nand tab\t.']
    for s in sent:
        publish('bscript', s)
    publish('bscript', BINARY, 'application/octet-stream')
    n = len(sent) + 1
    bare.wait('calls.length >= %d' % (n + 1), WAIT)
    lib.wait('got.length >= %d' % n, WAIT)
    calls = bare.eval('calls.slice(1)')
    msgs = lib.eval('got')
    for name, seen in (('the page callback', calls), ('push.js', msgs)):
        text = [m.get('data') for m in seen[:len(sent)]]
        ok(text == sent, 'script: %s gets each message intact, '
           '</script> and quotes included' % name,
           'got %r' % text)
        binary = seen[len(sent)] if len(seen) > len(sent) else {}
        ok(binary.get('encoding') == 'base64' and base64.b64decode(
            binary.get('data', '')) == BINARY,
           'script: %s gets binary data as base64' % name)
        ok(all(m.get('channel') == 'bscript' and isinstance(m.get('id'), int)
               for m in seen), 'script: %s messages name channel and id'
           % name)
    pwned = [p.eval('!!(window.pwned || Array.prototype.some.call(frames, '
                    'function (f) { return f.pwned; }))')
             for p in (bare, lib)]
    ok(not any(pwned), 'script: no message runs a script')
    bare.close()
    lib.close()


# --- (4) chat between two pages --------------------------------------------

def test_chat(b):
    if not HAVE_PUBLISH:
        ok(False, 'chat: two pages see each other\'s messages',
           'push-publish missing')
        return
    t = 'poll' if HAVE_POLL else 'sse'
    who = {'alice': 'sse', 'bob': t}
    pages = {}
    for name, k in who.items():
        pages[name] = b.new_page()
        pages[name].goto(url('/chat.html?token=demo&name=%s&transport=%s' %
                             (name, k)))
    for name, page in pages.items():
        connected(page, 'document.getElementById("status").textContent'
                  '.indexOf("connected") === 0')
    registered('chat', len(pages))
    for name, page in pages.items():
        page.eval('document.getElementById("text").value = "hello from %s";'
                  'document.getElementById("send").click(); 1' % name)
    want = ['hello from alice', 'hello from bob']
    expr = ('Array.prototype.map.call(document.querySelectorAll("#log li"),'
            ' function (li) { return li.lastChild.textContent; })')
    for name, page in pages.items():
        page.wait('(%s).length >= 2' % expr, WAIT)
        seen = page.eval(expr)
        ok(sorted(seen) == want, 'chat: %s (%s) sees both messages once' %
           (name, who[name]), 'saw %r, status %r' % (
               seen, page.eval('document.getElementById("status")'
                               '.textContent')))
    for page in pages.values():
        page.close()


# --- (5) one connection for several channels -------------------------------

def test_conn(b):
    kinds = ['auto', 'sse'] + (['poll'] if HAVE_POLL else [])
    for k in kinds:
        chans = ['bc%s%d' % (k, i) for i in range(5)]
        page = b.new_page()
        page.goto(url('/t-push.html?channels=%s&add=%s&transport=%s' % (
            ','.join(chans[:3]), chans[3], k)))
        connected(page)
        registered(chans[0], 1)
        time.sleep(0.5)         # a second request would show by now
        reqs = page.requests('/cgi-bin/push-')
        first = len(reqs)
        for c in chans[:4]:
            publish(c, 'to ' + c)
        page.wait('got.length >= 4', WAIT)
        page.eval('p.subscribe("%s"); 1' % chans[4])
        deadline = time.time() + WAIT
        while (time.time() < deadline and
               len(page.requests('/cgi-bin/push-')) == first):
            time.sleep(0.05)
        page.wait('opens > 1 || p.transport === "poll"', WAIT)
        time.sleep(0.3)
        publish(chans[4], 'to ' + chans[4])
        publish(chans[0], 'again ' + chans[0])
        page.wait('got.length >= 6', WAIT)
        time.sleep(0.5)
        seen = page.eval('got.map(function (m) { return m.data; })')
        reqs = page.requests('/cgi-bin/push-')
        want = ['to ' + c for c in chans] + ['again ' + chans[0]]
        if k == 'poll':
            # Long-poll makes a request per answer: each names all.
            one = all(('channel=' + ','.join(chans[:4])) in u
                      for u in reqs[:first]) and first >= 1
        else:
            one = first == 1 and len(reqs) == 2
        ok(one and seen == want,
           '%s: one connection carries all of a page\'s channels '
           '(%d request(s) for 4 channels, one more after subscribe())' %
           (page.eval('p.transport'), first),
           'requests %r, messages %r' % (reqs, seen))
        if k == 'auto':
            names = page.eval('got.map(function (m) { return m.channel; })')
            ok(names == chans + [chans[0]],
               'auto: each message names its channel', repr(names))
        page.close()
    if not HAVE_POLL:
        return
    # auto, when the stream never opens (here: it is not found), takes
    # long-poll after three attempts.
    page = b.new_page()
    page.goto(url('/t-push.html?channels=bcauto&stream=/cgi-bin/no-such'))
    fell = page.wait('p.transport === "poll"', WAIT * 2)
    registered('bcauto', 1)
    publish('bcauto', 'by poll')
    ok(fell and page.wait('got.length === 1 && got[0].data === "by poll"',
                          WAIT),
       'auto: a stream that never opens falls back to long-poll',
       'transport %r, errors %r' % (page.eval('p.transport'),
                                    page.eval('errors')))
    page.close()


# --- (6) gaps: a cursor older than what is retained is told so -----------

def test_gap(b):
    kinds = ['sse', 'script'] + (['poll'] if HAVE_POLL else [])
    pages = {}
    for k in kinds:
        pages[k] = b.new_page()
        pages[k].goto(url('/t-push.html?channels=bgap&heartbeat=2&'
                          'transport=' + k))
        connected(pages[k])
    registered('bgap', len(pages))
    publish('bgap', 'g0')
    for page in pages.values():
        page.wait('got.length > 0', WAIT)
    server('stop')
    for i in range(1, 11):
        publish('bgap', 'g%d' % i)
    subprocess.run([PUSHCTL, 'prune', '--keep', '2', 'bgap'], check=True,
                   stdout=subprocess.DEVNULL)
    server('start')
    for k, page in pages.items():
        page.wait('got.length >= 3 && gaps.length > 0', WAIT)
        data = page.eval('got.map(function (m) { return m.data; })')
        gaps = page.eval('gaps')
        ok(data == ['g0', 'g9', 'g10'] and len(gaps) == 1,
           '%s page: messages pruned while it was away are reported as '
           'one gap' % NAMES[k], 'messages %r, gaps %r' % (data, gaps))
        page.close()


# --- (7) the demo pages -----------------------------------------------------

def test_demo(b):
    page = b.new_page(800, 600)
    page.goto(url('/index.html'))
    page.wait('document.readyState === "complete"', WAIT)
    st = page.eval('Promise.all(Array.prototype.map.call('
                   'document.querySelectorAll("a[href$=\'.html\']"), '
                   'function (a) { return fetch(a.href).then(function (r) {'
                   ' return a.getAttribute("href") + " " + r.status; }); }))')
    ok(st and len(st) >= 4 and all(s.endswith(' 200') for s in st),
       'demo: index.html links every demo page', repr(st))

    publish('ps', 'F S UID PID CMD\n4 S 0 1 init')
    page.goto(url('/ps.html'))
    ok(page.wait('document.getElementById("out").textContent.indexOf('
                 '"1 init") > 0', WAIT),
       'demo: ps.html shows the latest process list at once')
    publish('ps', 'F S UID PID CMD\n4 S 0 2 kthreadd')
    ok(page.wait('document.getElementById("out").textContent.indexOf('
                 '"kthreadd") > 0', WAIT), 'demo: ps.html shows the next one')

    page.goto(url('/ps.html?transport=script'))
    ok(page.wait('document.getElementById("out").textContent.indexOf('
                 '"kthreadd") > 0 && /script/.test('
                 'document.getElementById("status").textContent)', WAIT),
       'demo: ps.html over the script transport')

    page.goto(url('/ticker.html'))
    connected(page, '/connected/.test(document.getElementById("status")'
              '.textContent)')
    publish('ticker', 'ACME 12.34\nBETA 5')
    ok(page.wait('document.getElementById("quotes").textContent.indexOf('
                 '"ACME12.34") >= 0', WAIT), 'demo: ticker.html shows quotes')

    graph = os.environ.get('PUSHGRAPH')
    if graph and os.access(graph, os.X_OK):
        subprocess.run([graph, '--count', '1'], check=True,
                       stdout=subprocess.DEVNULL)
    else:
        publish('load', cdp.png_encode(240, 80, (0, 0, 0)), 'image/png')
    page.goto(url('/image.html?stale=2000'))
    ok(page.wait('document.getElementById("img").naturalWidth === 240',
                 WAIT), 'demo: image.html shows the load graph')
    # A server restart ends the stream without any event in the page:
    # image.html reopens it when the picture stays the same too long.
    r = page.eval('(function (r) { return [r.left, r.top, r.width, '
                  'r.height]; })(document.getElementById("img")'
                  '.getBoundingClientRect())')
    cx, cy = int(r[0] + r[2] / 2), int(r[1] + r[3] / 2)

    def shows(rgb):
        deadline = time.time() + WAIT
        while time.time() < deadline:
            if cdp.png_pixel(page.screenshot(), cx, cy) == rgb:
                return True
            time.sleep(0.2)
        return False
    red, green = (200, 0, 0), (0, 150, 0)
    publish('load', cdp.png_encode(240, 80, red), 'image/png')
    before = shows(red)
    server('stop')
    server('start')
    publish('load', cdp.png_encode(240, 80, green), 'image/png')
    ok(before and shows(green),
       'demo: image.html comes back after a server restart')
    page.close()


# --- (8) close(): the control request ends the stream on the server -------

def subscribers(channel):
    """What pushctl stat says: the streams and held polls on channel."""
    r = subprocess.run([PUSHCTL, 'stat', channel], capture_output=True,
                       text=True)
    for line in r.stdout.splitlines():
        if line.startswith('subscribers:'):
            return int(line.split()[1])
    return None


def subscribers_become(channel, n):
    deadline = time.time() + WAIT
    while time.time() < deadline:
        if subscribers(channel) == n:
            return True
        time.sleep(0.1)
    return False


def test_close(b):
    kinds = ['sse', 'script'] + (['poll'] if HAVE_POLL else [])
    for k in kinds:
        ch = 'bclose' + k
        publish(ch, 'before')
        page = b.new_page()
        page.goto(url('/t-push.html?channels=%s&transport=%s' % (ch, k)))
        connected(page)
        up = subscribers_become(ch, 1)
        handle = page.eval('p.stream')
        page.eval('p.close(); 1')
        if k == 'poll':
            ok(up and handle is None and subscribers_become(ch, 0) and
               not page.requests('/cgi-bin/push-publish'),
               'close(): long-poll page aborts its held request, the '
               'server releases it (subscribers 1 -> 0), no control '
               'request', 'subscribers %r, handle %r' %
               (subscribers(ch), handle))
        else:
            want = '/cgi-bin/push-publish?stream=%s' % handle
            deadline = time.time() + WAIT
            answers = []
            while not answers and time.time() < deadline:
                answers = page.responses(want)
                time.sleep(0.05)
            body = page.body(answers[0][2]) if answers else None
            ended = (answers and answers[0][1] == 200 and body and
                     '"ended":true' in body)
            ok(up and isinstance(handle, str) and
               handle.split('.')[0].isdigit() and ended and
               subscribers_become(ch, 0),
               'close(): %s page sends the control request, the server '
               'ends its stream (answer "ended", subscribers 1 -> 0)' %
               NAMES[k], 'handle %r, answers %r, body %r, subscribers %r'
               % (handle, answers, body, subscribers(ch)))
        streams = len(page.requests('/cgi-bin/push-stream')) + len(
            page.requests('/cgi-bin/push-poll'))
        publish(ch, 'after')
        time.sleep(1)           # room for a reconnect or a message to show
        ok(page.eval('got.length') == 0 and streams == len(
            page.requests('/cgi-bin/push-stream')) + len(
            page.requests('/cgi-bin/push-poll')),
           'close(): %s page gets nothing more and does not reconnect' %
           NAMES[k])
        page.close()
    # Leaving the page (pagehide) sends the control request as a beacon;
    # its answer races with the hang-up of the page's stream, so only the
    # request is asserted.  The events are dispatched by the test: the
    # DevTools session does not report a beacon sent by a document that
    # is being replaced (the server gets it all the same).
    ch = 'bclosesse'
    page = b.new_page()
    page.goto(url('/t-push.html?channels=%s&transport=sse' % ch))
    connected(page)
    up = subscribers_become(ch, 1)
    handle = page.eval('p.stream')
    page.eval('dispatchEvent(new PageTransitionEvent("pagehide", '
              '{persisted: true})); 1')
    deadline = time.time() + WAIT
    sent = []
    while not sent and time.time() < deadline:
        sent = page.requests('/cgi-bin/push-publish?stream=%s' % handle)
        time.sleep(0.05)
    ok(up and handle and len(sent) == 1 and subscribers_become(ch, 0),
       'pagehide: an EventSource page sends the control request (a '
       'beacon) and the server releases the stream',
       'handle %r, requests %r' % (handle, sent))
    page.eval('dispatchEvent(new PageTransitionEvent("pageshow", '
              '{persisted: true})); 1')
    back = page.wait('opens === 2 && p.stream && p.stream !== %s' %
                     json.dumps(handle), WAIT)
    publish(ch, 'back')
    ok(back and page.wait('got.length === 1 && got[0].data === "back"',
                          WAIT) and subscribers(ch) == 1,
       'pageshow from the back-forward cache: the page connects again')
    page.close()


# --- (9) client pull: format=page reloads itself, no script at all --------

SHOTS = os.environ.get('SHOTS') or WORK     # where screenshots are kept


def block(rgb):
    """An HTML message: a big block of one colour."""
    return ('<div style="background:rgb(%d,%d,%d);height:400px"></div>' %
            rgb)


def test_pull(b):
    if not HAVE_POLL:
        ok(False, 'pull: format=page reloads itself', 'push-poll missing')
        return
    ch, x, y = 'bpull', 160, 150
    red, blue, green = (200, 30, 30), (30, 60, 200), (20, 150, 60)
    publish(ch, block(red) + '<script>document.title = "ran"</script>',
            'text/html; charset=utf-8')
    page = b.new_page()
    page.call('Emulation.setScriptExecutionDisabled', {'value': True})
    page.call('Page.navigate', {'url': url(
        '/cgi-bin/push-poll?channel=%s&format=page&refresh=1' % ch)})

    # What the tab's current document shows at (x, y), from its layout:
    # the colour of the block there, or an image decoded to its size.
    # Asserted on, not the screenshot's pixel: a tab reloading every
    # second on a loaded machine may be replaced before it paints (the
    # browser keeps the old picture meanwhile), the document is not.
    at = ('(function () { var e = document.elementFromPoint(%d, %d), c; '
          'if (e && e.tagName === "IMG") return e.complete && '
          'e.naturalWidth ? "img " + e.naturalWidth + "x" + '
          'e.naturalHeight : "img loading"; '
          'for (; e; e = e.parentElement) { c = getComputedStyle(e)'
          '.backgroundColor; if (c !== "rgba(0, 0, 0, 0)") return c; } '
          'return "nothing"; })()' % (x, y))

    def shows(want, rgb, name):
        deadline = time.time() + WAIT
        seen = None
        while time.time() < deadline:
            try:
                seen = page.eval(at)
            except cdp.CDPError:    # between a reload's two documents
                seen = None
            if seen == want:
                break
            time.sleep(0.2)
        pixel, end = None, time.time() + FRAME_WAIT
        while seen == want and pixel != rgb and time.time() < end:
            try:
                pixel = cdp.png_pixel(page.screenshot(
                    os.path.join(SHOTS, name)), x, y)
            except cdp.CDPError:
                pass
            time.sleep(0.2)
        note('pull: %s at (%d,%d), pixel %s' % (seen, x, y, pixel))
        return seen
    colour = 'rgb(%d, %d, %d)'
    first = shows(colour % red, red, 'pull-1-red.png')
    navs = page.navigations()
    title = page.eval('document.title')
    publish(ch, block(blue), 'text/html; charset=utf-8')
    second = shows(colour % blue, blue, 'pull-2-blue.png')
    note('pull: %d reloads after the second publish (none by the test), '
         '%d pages loaded in all' % (page.navigations() - navs,
                                     len(page.responses('format=page'))))
    ok(first == colour % red and second == colour % blue and
       page.navigations() > navs,
       'pull: a format=page tab with script disabled changes from the '
       'first message\'s colour to the second\'s by its Refresh alone',
       'saw %s then %s' % (first, second))
    ok(title != 'ran' and page.eval('document.title') == ch,
       'pull: script really is disabled in that tab (a <script> in the '
       'message did not run)', 'title %r' % title)
    publish(ch, cdp.png_encode(320, 300, green), 'image/png')
    third = shows('img 320x300', green, 'pull-3-image.png')
    ok(third == 'img 320x300', 'pull: an image message shows as an <img> '
       'of its raw URL', 'saw %s' % (third,))
    page.close()

    # ps.html without script: its <noscript> frame pulls the list.
    publish('ps', 'F S UID PID CMD\n4 S 0 1 pulled-init')
    page = b.new_page(800, 600)
    page.call('Emulation.setScriptExecutionDisabled', {'value': True})
    page.call('Page.navigate', {'url': url('/ps.html')})
    expr = ('(function () { var f = document.querySelector("iframe"); '
            'return f && f.contentDocument && f.contentDocument.body && '
            'f.contentDocument.body.textContent; })() || ""')
    seen = page.wait('(%s).indexOf("pulled-init") >= 0' % expr, WAIT)
    publish('ps', 'F S UID PID CMD\n4 S 0 2 pulled-kthreadd')
    again = page.wait('(%s).indexOf("pulled-kthreadd") >= 0' % expr, WAIT)
    ok(seen and again and page.eval('document.getElementById("status")'
                                    '.textContent') == 'connecting\u2026',
       'pull: ps.html without script shows each list through its '
       '<noscript> frame (format=page)')
    page.screenshot(os.path.join(SHOTS, 'pull-4-ps.png'))
    page.close()


# --- (10) one connection per browser, shared by its tabs -----------------

def datas(page):
    return page.eval('got.map(function (m) { return m.data; })')


def exactly(page, want, what):
    page.wait('got.length >= %d' % len(want), WAIT)
    time.sleep(0.5)             # room for a late duplicate
    seen = datas(page)
    ok(seen == want, what, 'got %d: %r' % (len(seen), seen[:30]))


def stays(channel, n, secs=1.5):
    """subscribers(channel) becomes n and is still n secs later."""
    return (subscribers_become(channel, n) and not time.sleep(secs) and
            subscribers(channel) == n)


def test_share(b):
    # worker: a SharedWorker; tab: a leader tab elected with Web Locks;
    # storage: the same elected through localStorage (no Web Locks).
    for kind in ('worker', 'tab', 'storage'):
        ch, ch2 = 'bsh' + kind, 'bsh2' + kind
        # Published before the tabs open: none of them gets these.
        publish(ch, 'before')
        publish(ch2, 'before')
        q = '/t-push.html?channels=%s&share=%s' % (
            ch, 'tab&nolocks=1' if kind == 'storage' else kind)
        tabs = []
        for i in range(3):
            tabs.append(b.new_page())
            tabs[-1].goto(url(q))
        up = all(t.wait('opens > 0', WAIT) for t in tabs)
        one = stays(ch, 1)
        own = [len(t.requests('/cgi-bin/push-stream')) for t in tabs]
        note('%s: stream requests made by each tab itself: %r; '
             'subscribers %r' % (kind, own, subscribers(ch)))
        ok(up and one and all(t.eval('p.transport') == 'shared'
                              for t in tabs),
           '%s: three tabs on one channel are one subscriber at the server'
           % kind, 'opens %r, subscribers %r' % (
               [t.eval('opens') for t in tabs], subscribers(ch)))
        want = ['a%d' % i for i in range(10)]
        for d in want:
            publish(ch, d)
        for i, t in enumerate(tabs):
            exactly(t, want, '%s: tab %d receives all 10 messages exactly '
                    'once, in order' % (kind, i + 1))
        # Close the tab that holds the connection (tab mode: the leader,
        # the one whose own requests show the stream) or, with the
        # worker, the tab that started it.
        first = 0
        if kind != 'worker':
            first = max(range(3), key=lambda i: len(
                tabs[i].requests('/cgi-bin/push-stream')))
        tabs.pop(first).close()
        more = ['b%d' % i for i in range(10)]
        for i, d in enumerate(more):
            publish(ch, d)
            if i == 2:
                time.sleep(0.3)
        for i, t in enumerate(tabs):
            exactly(t, want + more, '%s: after the %s tab closed, the '
                    'others get the next 10, nothing lost or repeated' % (
                        kind, 'first' if kind == 'worker' else 'leader'))
        ok(stays(ch, 1), '%s: still one subscriber after that' % kind,
           'subscribers %r' % subscribers(ch))
        # One tab widens the shared stream with a second channel.
        tabs[0].eval('p.subscribe("%s"); 1' % ch2)
        tabs[0].wait('p.channels.length === 2', WAIT)
        subscribers_become(ch2, 1)
        mixed = []
        for i in range(5):
            publish(ch2, 'c%d' % i)
            publish(ch, 'd%d' % i)
            mixed += ['c%d' % i, 'd%d' % i]
        exactly(tabs[0], want + more + mixed, '%s: the tab that subscribed '
                'to a second channel receives both, in order' % kind)
        exactly(tabs[1], want + more + ['d%d' % i for i in range(5)],
                '%s: the other tab still receives its own channel only' %
                kind)
        ok(subscribers(ch) == 1 and subscribers(ch2) == 1,
           '%s: one subscriber on each channel (one shared stream)' % kind,
           'subscribers %r, %r' % (subscribers(ch), subscribers(ch2)))
        for t in tabs:
            t.close()
        ok(subscribers_become(ch, 0),
           '%s: the shared stream ends when its last tab closes' % kind)
    # A SharedWorker that cannot start: the page connects on its own.
    ch = 'bshnoworker'
    publish(ch, 'before')
    page = b.new_page()
    page.goto(url('/t-push.html?channels=%s&share=worker&worker=/no-such.js'
                  % ch))
    fell = page.wait('opens > 0 && p.transport !== "shared"', WAIT)
    subscribers_become(ch, 1)
    publish(ch, 'alone')
    ok(fell and page.wait('got.length === 1 && got[0].data === "alone"',
                          WAIT),
       'share: a SharedWorker that fails to load leaves the page its own '
       'connection', 'transport %r' % page.eval('p.transport'))
    page.close()


TESTS = [('img', test_img), ('order', test_order), ('script', test_script),
         ('chat', test_chat), ('conn', test_conn), ('gap', test_gap),
         ('demo', test_demo), ('close', test_close), ('pull', test_pull),
         ('share', test_share)]


def main():
    profile = os.path.join(WORK, 'profile')
    os.makedirs(profile)
    b = cdp.Browser(CHROMIUM, profile, os.path.join(WORK, 'chromium.log'))
    try:
        for name, fn in TESTS:
            if ONLY and name not in ONLY:
                continue
            try:
                fn(b)
            except Exception as e:      # one broken test, not all
                ok(False, name + ': ran to the end', '%s: %s' % (
                    type(e).__name__, e))
    finally:
        b.close()
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
