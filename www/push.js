/*
 * push.js: the browser side of pushcgi.  No dependencies, plain ES5.
 *
 * One Push object is one connection carrying all of its channels.
 *
 *   var p = new Push({channels: ['ps', 'news'], last: 1});
 *   p.on('message', function (m) { show(m.channel, m.data); });
 *   p.subscribe('chat');      // one reconnect, now with ps,news,chat
 *   p.close();
 *
 * Options (only channels is required):
 *   channels   array, or comma-separated string, of channel names
 *   transport  'auto' (default), 'sse', 'script' or 'poll'.  auto takes
 *              EventSource when the browser has it and the object has
 *              one channel, else the iframe script stream (an SSE message
 *              does not say which channel it came from, see 'message');
 *              when the stream never opened in three attempts in a row
 *              (a proxy that buffers it, say), auto falls back to
 *              long-poll for good.
 *   stream     URL of push-stream  (default '/cgi-bin/push-stream')
 *   poll       URL of push-poll    (default '/cgi-bin/push-poll')
 *   control    URL of push-publish, for the control request of close()
 *              (default '/cgi-bin/push-publish')
 *   since      start after this message id (default: with what is
 *              published from now on)
 *   last       start with the newest N retained messages (0-100)
 *   heartbeat  seconds between the server's heartbeats (default: the
 *              server's, assumed to be at most 20 s): a stream that
 *              shows nothing for two of them plus 2 s is taken as lost
 *   timeout    long-poll hold, seconds (default 25)
 *   minDelay, maxDelay  reconnect backoff, ms (default 1000, 30000)
 *   events     SSE event names to listen to from the start
 *   share      true (default), false, 'worker' or 'tab': with transport
 *              'auto', every page of this origin that uses the same
 *              stream, poll and control URLs shares one connection (see
 *              Sharing below).  false: this object has a connection of
 *              its own.  'worker' or 'tab' force one way of sharing.
 *   worker     URL of this file for the SharedWorker (default: the src
 *              of the <script> that loaded it; a worker that fails to
 *              load leaves each object a connection of its own)
 *
 * Events, p.on(name, fn) and p.off(name, fn):
 *   'message'  fn(m) for every message, in id order, each exactly once
 *              across reconnects and server restarts:
 *              m = {id, channel, time, type, event, data}, and
 *              m.encoding = 'base64' when data is binary (base64 text).
 *              Over SSE, time and type are null, and channel is null
 *              when the object has several channels.
 *   'gap'      fn(id): messages up to id were pruned before this page
 *              could see them (its cursor was too old); what is still
 *              retained follows.  id 0: the server's log was replaced;
 *              ids start again from 1 (the cursor goes back to 0), and
 *              what this page had not seen of the old log may be lost
 *   'open'     fn({transport, stream}) connected; stream is the server's
 *              handle of the stream, "ID.SECRET" (null for long-poll)
 *   'error'    fn({delay}) the connection was lost; the next attempt
 *              comes in delay ms (exponential backoff with jitter), and
 *              resumes after the last id seen
 *   'close'    fn() after p.close()
 *   any other name: messages published with that event name (they go
 *              to 'message' too).  Over SSE, a message with an event name
 *              arrives only if that name was given to on() or to
 *              options.events: EventSource drops the others.
 *
 * Methods: on, off, subscribe(names), unsubscribe(names), close().
 * close() stops all events at once; for a stream it first sends the
 * control request (POST control?stream=HANDLE) so that the server ends
 * the stream and frees what it held at once, and drops the connection
 * when that is answered (at the latest after 5 s).  Leaving the page does
 * the same through navigator.sendBeacon; a page restored from the
 * back-forward cache connects again.
 *
 * Properties: channels, transport, cursor (the last id seen: messages,
 * gaps and long-poll answers move it), stream (the handle of the stream
 * now open, or null).
 *
 * Resuming: every (re)connection asks for the messages after the cursor.
 * A stream opened without one names where it starts (the sse stream
 * event's id, the script stream's "cursor"), and long-poll answers name
 * the next cursor, so a connection lost before its first message still
 * resumes without a loss.
 *
 * Sharing: a browser holds one long connection per origin and endpoint,
 * not one per tab.  Where the browser has SharedWorker, this file runs
 * as one (named after the endpoint) and holds the connection for every
 * page; elsewhere one tab is elected leader (Web Locks, else
 * localStorage) and holds it, talking to the others over a
 * BroadcastChannel; when it closes, another takes over.  The shared
 * connection carries the union of the pages' channels (a page
 * subscribing to a new one widens it: one reconnect, resumed from the
 * cursor), reads the script framing through fetch() (each message names
 * its channel and event) and falls back to long-poll as 'auto' does.
 * Every page still gets every message of its channels exactly once, in
 * order: each has its own cursor, and a page that joins or rejoins
 * behind the stream makes it resume from that cursor (the others drop
 * what they saw).  A page with last=N gets its newest N by one long-poll
 * request.  For a shared object transport is 'shared', stream is null
 * (close() only leaves; the last page to leave ends the stream), and
 * 'open' and 'error' report the shared connection.
 *
 * Push.publish(url, channel, data, opts, done): POST one message.
 *   opts: {token, event, type}; done(err, answer) with the server's JSON
 *   answer {id, channel, subscribers}.
 *
 * The script transport needs the page and the server on one origin (the
 * stream calls a function of this window).  transport 'fetch' reads the
 * same framing with fetch() (no iframe; what the shared connection uses).
 */
(function (global) {
	'use strict';

	var count = 0, STREAM = '/cgi-bin/push-stream',
	    POLL = '/cgi-bin/push-poll', CONTROL = '/cgi-bin/push-publish',
	    CONTROL_WAIT = 5000, AUTO_TRIES = 3,
	    IDLE_CLOSE = 2000,  /* ms a shared stream outlives its last page */
	    WORKER_WAIT = 5000, /* ms for the SharedWorker to say it runs */
	    LEADER_BEAT = 1000, LEADER_STALE = 3000,   /* localStorage election */
	    pageId = Math.random().toString(36).slice(2) +
	    (+new Date()).toString(36),
	    scriptURL = (function () {
		var d = global.document, c = d && d.currentScript;

		return c && c.src ? c.src : null;
	    }()),
	    canFetch = !!(global.fetch && global.ReadableStream &&
	    global.TextDecoder);

	function Push(opts) {
		var self = this;

		opts = opts || {};
		this.opts = opts;
		this.channels = [];
		this.cursor = opts.since != null ? +opts.since : null;
		this.stream = this.transport = this._conn = this._timer = null;
		this._h = {};
		this._n = ++count;
		this._gen = this._tries = 0;
		this._closed = this._everOpen = this._poll = false;
		this._events = (opts.events || []).slice();
		if (global.addEventListener) {
			global.addEventListener('pagehide', function () {
				self._leave();
			});
			global.addEventListener('pageshow', function (e) {
				if (e.persisted && !self._closed)
					self._schedule(0);
			});
		}
		this.subscribe(opts.channels || []);
	}

	var P = Push.prototype;

	function lifecycle(name) {
		return /^(message|gap|open|error|close)$/.test(name);
	}

	function join(url, q) {
		return url + (url.indexOf('?') < 0 ? '?' : '&') + q;
	}

	/* A request; done(status, parsed JSON answer or null, text). */
	function xhr(method, url, headers, body, timeout, done) {
		var x = new XMLHttpRequest(), k;

		x.open(method, url);
		for (k in headers)
			x.setRequestHeader(k, headers[k]);
		x.timeout = timeout || 0;
		x.onreadystatechange = function () {
			var r = null;

			if (x.readyState !== 4)
				return;
			try {
				r = JSON.parse(x.responseText);
			} catch (e) {
			}
			done(x.status, r, x.responseText || '');
		};
		x.send(body);
		return x;
	}

	/* The control request: end the stream named by handle.  done() runs
	 * once, when it is answered or after CONTROL_WAIT ms; beacon: the
	 * page is going away, send it the one way that survives that. */
	function control(url, handle, beacon, done) {
		var once = false, n = global.navigator;

		function fin() {
			if (!once) {
				once = true;
				done();
			}
		}
		url = join(url, 'stream=' + encodeURIComponent(handle));
		if (beacon && n && n.sendBeacon && n.sendBeacon(url)) {
			fin();
			return;
		}
		setTimeout(fin, CONTROL_WAIT);
		if (global.fetch)
			global.fetch(url, {method: 'POST', keepalive: true,
			    credentials: 'same-origin'}).then(fin, fin);
		else
			xhr('POST', url, {}, null, CONTROL_WAIT, fin);
	}

	P.on = function (name, fn) {
		(this._h[name] = this._h[name] || []).push(fn);
		if (!lifecycle(name) && this._events.indexOf(name) < 0) {
			this._events.push(name);
			if (this._conn && this._conn.listen)
				this._conn.listen(name);
		}
		return this;
	};

	P.off = function (name, fn) {
		var a = this._h[name] || [], i = a.indexOf(fn);

		if (i >= 0)
			a.splice(i, 1);
		return this;
	};

	/* A handler that throws must not stop the connection's loop. */
	P._emit = function (name, arg) {
		var a = (this._h[name] || []).slice(), i;

		for (i = 0; i < a.length; i++) {
			try {
				a[i].call(this, arg);
			} catch (e) {
				setTimeout(function () { throw e; }, 0);
			}
		}
	};

	P.subscribe = function (names) {
		return this._change(names, true);
	};

	P.unsubscribe = function (names) {
		return this._change(names, false);
	};

	/* Channel changes made in one turn of the event loop cost one
	 * reconnect: the connection is (re)made on the next turn. */
	P._change = function (names, add) {
		var i, k, changed = false;

		if (typeof names === 'string')
			names = names.split(',');
		for (i = 0; i < names.length; i++) {
			k = this.channels.indexOf(names[i]);
			if (add ? k < 0 && names[i] !== '' : k >= 0) {
				if (add)
					this.channels.push(names[i]);
				else
					this.channels.splice(k, 1);
				changed = true;
			}
		}
		if (changed && !this._closed)
			this._schedule(0);
		return this;
	};

	P._schedule = function (ms) {
		var self = this;

		clearTimeout(this._timer);
		this._timer = setTimeout(function () { self._connect(); }, ms);
	};

	/* Forget the current connection: nothing it sends counts any more.
	 * Returns it, still open, when keep is set; else closes it. */
	P._drop = function (keep) {
		var c = this._conn;

		this._gen++;
		this._conn = this.stream = null;
		if (c && !keep)
			c.close();
		return c;
	};

	P._connect = function () {
		var self = this, gen, t = this.opts.transport || 'auto';

		this._drop();
		if (this._closed || this.channels.length === 0)
			return;
		if (t === 'auto' && this._share === undefined)
			this._share = shareKind(this.opts);
		if (t === 'auto' && this._share) {
			t = 'shared';
		} else if (t === 'auto') {
			if (!this._everOpen && this._tries >= AUTO_TRIES)
				this._poll = true;
			/* opts.fetch (the shared connection): the script
			 * framing through fetch(), which names each message's
			 * channel and event, in a worker too. */
			t = this._poll ? 'poll' : this.opts.fetch ? (canFetch ?
			    'fetch' : global.document ? 'script' : 'poll') :
			    global.EventSource && this.channels.length === 1 ?
			    'sse' : 'script';
		}
		this.transport = t;
		gen = this._gen;
		/* live(): this connection is still the current one. */
		this._conn = transports[t](this, function () {
			return self._gen === gen;
		}, '__push' + this._n + '_' + gen);
	};

	/* A request's URL, with the cursor of now. */
	P._url = function (poll, q) {
		var o = this.opts;

		q = 'channel=' + this.channels.map(encodeURIComponent).join(',') +
		    q;
		if (this.cursor != null)
			q += '&since=' + this.cursor;
		else if (o.last != null)
			q += '&last=' + o.last;
		if (o.heartbeat != null && !poll)
			q += '&heartbeat=' + o.heartbeat;
		return join(poll ? o.poll || POLL : o.stream || STREAM, q);
	};

	P._opened = function (stream) {
		this._tries = 0;
		this._everOpen = true;
		this.stream = stream;
		this._emit('open', {transport: this.transport, stream: stream});
	};

	/* The connection ended or failed: try again after a delay drawn from
	 * [d/2, d), d doubling per failed attempt up to maxDelay. */
	P._lost = function () {
		var d = Math.min(this.opts.maxDelay || 30000,
		    (this.opts.minDelay || 1000) * Math.pow(2, this._tries));

		this._drop();
		if (this._closed)
			return;
		this._tries = Math.min(this._tries + 1, 30);
		d = Math.round(d / 2 + Math.random() * d / 2);
		this._schedule(d);
		this._emit('error', {delay: d});
	};

	/* Every transport hands its messages here: ids only grow, so one
	 * cursor removes whatever a resumed connection sends again. */
	P._deliver = function (m) {
		if (this.cursor != null && m.id <= this.cursor)
			return;
		this.cursor = m.id;
		this._emit('message', m);
		if (m.event != null && !lifecycle(m.event))
			this._emit(m.event, m);
	};

	/* A gap of id 0: the server's log was replaced and its ids start
	 * again, so the cursor goes back to 0 and the lower ids that follow
	 * are new messages. */
	P._gap = function (id) {
		if (id === 0) {
			this.cursor = 0;
			this._emit('gap', 0);
			return;
		}
		if (this.cursor != null && id <= this.cursor)
			return;
		this.cursor = id;
		this._emit('gap', id);
	};

	/* Move the cursor without a message (a long-poll answer's "next"). */
	P._advance = function (id) {
		if (id != null && (this.cursor == null || id > this.cursor))
			this.cursor = id;
	};

	P.close = function () {
		var c, h = this.stream, o = this.opts;

		if (this._closed)
			return;
		this._closed = true;
		clearTimeout(this._timer);
		/* The stream stays open until the server has ended it: the
		 * control request then finds it, and the server finishes the
		 * response cleanly instead of noticing a hang-up later. */
		c = this._drop(h != null);
		if (h != null)
			control(o.control || CONTROL, h, false, function () {
				c.close();
			});
		this._emit('close');
	};

	/* pagehide: the page goes away (or into the back-forward cache). */
	P._leave = function () {
		var h = this.stream;

		clearTimeout(this._timer);
		this._drop();
		if (h != null)
			control(this.opts.control || CONTROL, h, true,
			    function () {});
	};

	/* The script framing's calls, as the script and fetch transports get
	 * them. */
	function scriptCall(p, j) {
		if (j.stream != null) {
			if (j.cursor != null)
				p._advance(j.cursor);
			p._opened(String(j.stream));
		}
		else if (j.gap != null)
			p._gap(j.gap);
		else
			p._deliver(j);
	}

	var transports = {
		sse: function (p, live) {
			var es = new global.EventSource(p._url(0, '&format=sse')),
			    i, watch;

			function message(e) {
				var ev = e.type.replace(/;base64$/, ''), m = {
					id: +e.lastEventId, time: null, type: null,
					channel: p.channels.length === 1 ?
					    p.channels[0] : null,
					event: ev === 'message' ? null : ev,
					data: e.data
				};

				if (ev !== e.type)
					m.encoding = 'base64';
				if (live())
					p._deliver(m);
			}
			function listen(name) {
				es.addEventListener(name, message);
				es.addEventListener(name + ';base64', message);
			}
			listen('message');
			for (i = 0; i < p._events.length; i++)
				listen(p._events[i]);
			/* The first event names the stream.  Heartbeats are
			 * comments, which EventSource does not show: only a
			 * stream that never starts can be timed out here. */
			es.addEventListener('stream', function (e) {
				clearTimeout(watch);
				if (!live())
					return;
				if (e.lastEventId !== '')
					p._advance(+e.lastEventId);
				p._opened(e.data);
			});
			es.addEventListener('gap', function (e) {
				if (live())
					p._gap(+e.data);
			});
			watch = setTimeout(function () {
				if (live())
					p._lost();
			}, ((p.opts.heartbeat || 20) * 2 + 2) * 1000);
			/* EventSource would reconnect by itself, but without
			 * backoff, and not at all after an HTTP error. */
			es.onerror = function () {
				if (live())
					p._lost();
				else
					es.close();
			};
			return {listen: listen, close: function () {
				clearTimeout(watch);
				es.close();
			}};
		},

		script: function (p, live, name) {
			var f = null, doc = global.document, watch = null, quiet = 0;

			global[name] = function (j) {
				if (live())
					scriptCall(p, j);
			};
			/* The iframe's document loads when the stream ends, but
			 * not when a chunked response is cut short (a web server
			 * that stops): then only the missing heartbeats tell.
			 * Whatever arrived (heartbeats are whitespace) is in its
			 * body; emptying it also keeps a long stream small. */
			function check() {
				var b = null;

				try {
					b = f.contentDocument.body;
				} catch (e) {
				}
				if (b && b.firstChild) {
					quiet = 0;
					while (b.firstChild)
						b.removeChild(b.firstChild);
				} else if (++quiet >= 2 && live())
					p._lost();
			}
			/* Started after the page's load event: an iframe that
			 * never finishes would hold that event back. */
			function start() {
				if (!live())
					return;
				f = doc.createElement('iframe');
				f.style.display = 'none';
				f.onload = f.onerror = function () {
					if (live())
						p._lost();
				};
				f.src = p._url(0, '&format=script&callback=' + name);
				doc.body.appendChild(f);
				watch = setInterval(check,
				    (p.opts.heartbeat || 20) * 1000 + 2000);
			}
			if (doc.readyState === 'complete')
				start();
			else
				global.addEventListener('load', start);
			return {close: function () {
				clearInterval(watch);
				global[name] = function () {};
				if (f && f.parentNode) {
					f.onload = f.onerror = null;
					f.src = 'about:blank';
					f.parentNode.removeChild(f);
				}
			}};
		},

		/* The script framing read through fetch(): each
		 * <script>parent.push({...})</script> is one call (its JSON
		 * escapes <, so "</script>" only ever ends a call).  Any bytes,
		 * heartbeats included, show the stream is alive. */
		fetch: function (p, live) {
			var ctl = global.AbortController ?
			    new global.AbortController() : null,
			    dec = new global.TextDecoder(), buf = '', watch,
			    over = false, quiet = ((p.opts.heartbeat || 20) * 2 +
			    2) * 1000;

			function stop() {
				over = true;
				clearTimeout(watch);
				if (ctl)
					ctl.abort();
			}
			function fail() {
				if (!over && live()) {
					stop();
					p._lost();
				}
			}
			function alive() {
				clearTimeout(watch);
				watch = setTimeout(fail, quiet);
			}
			function parse() {
				var a, b, s, i, k, j;

				for (;;) {
					a = buf.indexOf('<script>');
					if (a < 0) {
						buf = buf.slice(-8);
						return;
					}
					b = buf.indexOf('</script>', a);
					if (b < 0) {
						buf = buf.slice(a);
						return;
					}
					s = buf.slice(a + 8, b);
					buf = buf.slice(b + 9);
					i = s.indexOf('(');
					k = s.lastIndexOf(')');
					j = null;
					try {
						j = JSON.parse(s.slice(i + 1, k));
					} catch (e) {
					}
					if (over || !live())
						return;
					if (i >= 0 && j)
						scriptCall(p, j);
				}
			}
			alive();
			global.fetch(p._url(0, '&format=script'), {
				credentials: 'same-origin', cache: 'no-store',
				signal: ctl ? ctl.signal : undefined
			}).then(function (r) {
				var rd;

				if (over || !live())
					return;
				if (r.status !== 200 || !r.body)
					return fail();
				rd = r.body.getReader();
				function pump() {
					rd.read().then(function (x) {
						if (over || !live())
							return;
						if (x.done)
							return fail();
						alive();
						buf += dec.decode(x.value,
						    {stream: true});
						parse();
						pump();
					}, fail);
				}
				pump();
			}, fail);
			return {close: stop};
		},

		/* A page's part of the shared connection (see Sharing). */
		shared: function (p, live, name) {
			var l = link(p.opts, p._share), c = {id: pageId + ' ' + name};

			c.state = function () {
				return {id: c.id, page: pageId,
				    channels: p.channels.slice(), cursor: p.cursor,
				    last: p.cursor == null ? p.opts.last : null};
			};
			c.on = function (msg) {
				if (!live())
					return;
				if (msg.op === 'msg') {
					if (p.channels.indexOf(msg.m.channel) >= 0)
						p._deliver(msg.m);
				} else if (msg.op === 'gap') {
					p._gap(msg.id);
				} else if (msg.op === 'open') {
					p._advance(msg.cursor);
					p._opened(null);
				} else if (msg.op === 'error') {
					p._emit('error', {delay: msg.delay});
				}
			};
			c.fail = function () {
				if (live()) {
					p._share = null;
					p._schedule(0);
				}
			};
			l.clients[c.id] = c;
			l.send({op: 'join', c: c.state(), opts: shareOpts(p.opts)});
			return {close: function () {
				delete l.clients[c.id];
				l.send({op: 'leave', id: c.id});
			}};
		},

		/* {"messages":[...],"next":ID[,"gap":G][,"more":true]}: the
		 * next poll asks for what comes after "next". */
		poll: function (p, live) {
			var x = null, t = p.opts.timeout || 25, empty = 0;

			function answer(r, began, seen) {
				var a = r.messages || [], i;

				if (!seen)
					p._opened(null);
				if (r.gap != null && live())
					p._gap(r.gap);
				for (i = 0; i < a.length && live(); i++)
					p._deliver(a[i]);
				if (!live())
					return;
				p._advance(r.next);
				/* Empty answers well before the timeout, again and
				 * again, are a fault: back off, do not spin. */
				empty = a.length === 0 && !r.more &&
				    new Date() - began < 500 ? empty + 1 : 0;
				if (empty > 2)
					p._lost();
				else
					go(true);
			}
			function go(seen) {
				var began = new Date();

				x = xhr('GET', p._url(1, '&timeout=' + t +
				    '&format=json&_=' + (+began)), {}, null,
				    (t + 15) * 1000, function (status, r) {
					if (!live())
						return;
					if (status === 200 && r)
						answer(r, began, seen);
					else
						p._lost();
				});
			}
			go(false);
			return {close: function () {
				x.abort();
			}};
		}
	};

	/* --- sharing: the pages' side ------------------------------------ */

	function abs(u) {
		try {
			return new global.URL(u, global.location.href).href;
		} catch (e) {
			return u;
		}
	}

	/* What the shared connection is made with: one per endpoint. */
	function shareOpts(o) {
		return {stream: abs(o.stream || STREAM), poll: abs(o.poll || POLL),
		    control: abs(o.control || CONTROL), heartbeat: o.heartbeat,
		    timeout: o.timeout, minDelay: o.minDelay,
		    maxDelay: o.maxDelay};
	}

	/* 'worker', 'tab', or null: how this page can share (see share). */
	function shareKind(o) {
		var w = o.share;

		if (w === false || !global.document)
			return null;
		if (w !== 'tab' && global.SharedWorker && (o.worker || scriptURL))
			return 'worker';
		if (w !== 'worker' && global.BroadcastChannel)
			return 'tab';
		return null;
	}

	var links = {}, pageLock = null;

	/* Run ready() once this page holds its lock, which it keeps while it
	 * lives: the one holding the shared connection asks for the same lock
	 * and gets it when the page is gone, however it went. */
	function lockPage(ready) {
		var n = global.navigator;

		if (!n || !n.locks) {
			ready();
			return;
		}
		if (!pageLock) {
			pageLock = [];
			n.locks.request('push-page ' + pageId, function () {
				var a = pageLock;

				pageLock = true;
				a.forEach(function (f) { f(); });
				return new Promise(function () {});
			});
		}
		if (pageLock === true)
			ready();
		else
			pageLock.push(ready);
	}

	/* A message from the shared connection to one of this page's
	 * objects, or "hello" (a new leader): every object joins again. */
	function dispatch(l, msg) {
		var id;

		if (msg.op === 'hello') {
			for (id in l.clients)
				l.send({op: 'join', c: l.clients[id].state(),
				    opts: l.opts});
		} else if (msg.to && l.clients[msg.to]) {
			l.clients[msg.to].on(msg);
		}
	}

	/* This page's way to the shared connection of o's endpoint:
	 * {clients, send(msg), opts}. */
	function link(o, kind) {
		var so = shareOpts(o), key = [so.stream, so.poll, so.control]
		    .join(' '), l = links[kind + ' ' + key], queue = [], ready = false;

		if (l)
			return l;
		l = links[kind + ' ' + key] = {clients: {}, opts: so};
		/* Sends wait for the page's lock. */
		function later(send) {
			return function (msg) {
				if (ready)
					send(msg);
				else
					queue.push(msg);
			};
		}
		function go() {
			ready = true;
			queue.splice(0).forEach(function (m) { l.send(m); });
		}
		if (kind === 'worker') {
			var wurl = abs(o.worker || scriptURL), w, wait;

			/* A worker that cannot run (its script is not found,
			 * or is not this one): every object here connects on
			 * its own. */
			function broken() {
				var id;

				clearTimeout(wait);
				if (links[kind + ' ' + key] !== l)
					return;
				delete links[kind + ' ' + key];
				for (id in l.clients)
					l.clients[id].fail();
			}
			w = new global.SharedWorker(wurl, 'push ' + wurl + ' ' + key);
			wait = setTimeout(broken, WORKER_WAIT);
			w.port.onmessage = function (e) {
				clearTimeout(wait);
				if (e.data.op !== 'ready')
					dispatch(l, e.data);
			};
			w.onerror = broken;
			w.port.start();
			l.send = later(function (msg) { w.port.postMessage(msg); });
		} else {
			tabLink(l, key, later);
		}
		lockPage(go);
		return l;
	}

	/* No SharedWorker: one tab is the leader and holds the connection
	 * (a Hub); the others talk to it over a BroadcastChannel. */
	function tabLink(l, key, later) {
		var bc = new global.BroadcastChannel('push ' + key), hub = null,
		    n = global.navigator;

		function lead() {
			var id;

			hub = new Hub(function (c, msg) {
				msg.to = c.id;
				if (c.page === pageId)
					dispatch(l, msg);
				else
					bc.postMessage(msg);
			});
			for (id in l.clients)
				hub.handle({op: 'join', c: l.clients[id].state(),
				    opts: l.opts});
			bc.postMessage({op: 'hello'});
		}
		bc.onmessage = function (e) {
			var m = e.data;

			if (hub && (m.op === 'join' || m.op === 'leave'))
				hub.handle(m);
			else if (!hub)
				dispatch(l, m);
		};
		l.send = later(function (msg) {
			if (hub)
				hub.handle(msg);
			else
				bc.postMessage(msg);
		});
		if (n && n.locks)
			n.locks.request('push-leader ' + key, function () {
				lead();
				return new Promise(function () {});
			});
		else
			electByStorage('push-leader ' + key, lead);
	}

	/* Leader election without Web Locks: the leader writes {id, t} to
	 * localStorage every LEADER_BEAT ms; a tab that finds it older than
	 * LEADER_STALE (or gone: a leader removes it when it leaves) claims
	 * it, and leads if its claim is still there a moment later. */
	function electByStorage(k, lead) {
		var ls = null, led = false;

		try {
			ls = global.localStorage;
		} catch (e) {
		}
		if (!ls) {
			lead();
			return;
		}
		function read() {
			try {
				return JSON.parse(ls.getItem(k));
			} catch (e) {
				return null;
			}
		}
		function claim() {
			ls.setItem(k, JSON.stringify({id: pageId, t: +new Date()}));
		}
		function tick() {
			var v = read();

			if (led)
				return claim();
			if (!v || +new Date() - v.t > LEADER_STALE) {
				claim();
				setTimeout(function () {
					var w = read();

					if (!led && w && w.id === pageId) {
						led = true;
						lead();
					}
				}, 200);
			}
		}
		tick();
		setInterval(tick, LEADER_BEAT);
		global.addEventListener('pagehide', function () {
			if (led)
				ls.removeItem(k);
		});
		global.addEventListener('storage', function (e) {
			if (e.key === k && e.newValue == null && !led)
				tick();
		});
	}

	/* --- sharing: the shared connection -------------------------------- */

	/*
	 * The connection shared by pages (in the SharedWorker or the leader
	 * tab): a Push with the union of their channels.  post(c, msg) sends
	 * msg to client c.  Each client c = {id, page, channels, cursor,
	 * last} keeps its own cursor: a message goes to it when it is newer
	 * than that cursor and on one of its channels, and moves the cursor
	 * (whatever its channel: the stream carries all of them).  A client
	 * that joins behind the stream lowers the stream's cursor and makes
	 * it reconnect; the others drop what they have seen.
	 */
	function Hub(post) {
		this.post = post;
		this.clients = {};
		this.p = null;
		this.opts = null;
		this.open = false;
		this.idle = null;
		this.watched = {};
	}

	var H = Hub.prototype;

	H.handle = function (msg, port) {
		if (msg.op === 'join')
			this.join(msg.c, msg.opts, port);
		else if (msg.op === 'leave')
			this.leave(msg.id);
	};

	H.each = function (fn) {
		var id;

		for (id in this.clients)
			fn(this.clients[id]);
	};

	H.join = function (c, opts, port) {
		var self = this, n = global.navigator, q;

		clearTimeout(this.idle);
		c.port = port;
		this.clients[c.id] = c;
		this.opts = this.opts || opts;
		if (c.page !== pageId && !this.watched[c.page] && n && n.locks) {
			this.watched[c.page] = true;
			n.locks.request('push-page ' + c.page, function () {
				delete self.watched[c.page];
				self.each(function (d) {
					if (d.page === c.page)
						self.leave(d.id);
				});
			});
		}
		if (c.cursor != null || !(c.last > 0)) {
			this.activate(c);
			return;
		}
		/* last=N: the newest N of its channels, by one long-poll. */
		c.pending = true;
		q = 'channel=' + c.channels.map(encodeURIComponent).join(',') +
		    '&last=' + c.last + '&timeout=0&format=json&_=' + (+new Date());
		this.widen();
		xhr('GET', join(this.opts.poll, q), {}, null, 30000,
		    function (status, r) {
			var a = r && r.messages || [], i;

			if (self.clients[c.id] !== c)
				return;
			c.pending = false;
			for (i = 0; i < a.length; i++) {
				c.cursor = a[i].id;
				self.post(c, {op: 'msg', m: a[i]});
			}
			if (c.cursor == null && r && r.next != null)
				c.cursor = r.next;
			self.activate(c);
		});
	};

	H.activate = function (c) {
		var self = this, p = this.p, o = this.opts;

		if (c.cursor == null && p && p.cursor != null)
			c.cursor = p.cursor;
		if (!p) {
			p = this.p = new Push({channels: [], share: false,
			    fetch: true, since: c.cursor, stream: o.stream,
			    poll: o.poll, control: o.control,
			    heartbeat: o.heartbeat, timeout: o.timeout,
			    minDelay: o.minDelay, maxDelay: o.maxDelay});
			p.on('message', function (m) { self.message(m); });
			p.on('gap', function (id) {
				self.each(function (d) {
					if (!d.pending && (d.cursor == null ||
					    id > d.cursor)) {
						d.cursor = id;
						self.post(d, {op: 'gap', id: id});
					}
				});
			});
			p.on('open', function () {
				self.open = true;
				self.each(function (d) {
					if (!d.pending)
						self.opened(d);
				});
			});
			p.on('error', function (e) {
				self.open = false;
				self.each(function (d) {
					self.post(d, {op: 'error', delay: e.delay});
				});
			});
		} else if (c.cursor != null && (p.cursor == null ||
		    c.cursor < p.cursor)) {
			p.cursor = c.cursor;
			this.open = false;
			p._schedule(0);
		}
		this.widen();
		if (this.open && p.transport !== null && p._conn)
			this.opened(c);
	};

	H.opened = function (c) {
		if (c.cursor == null)
			c.cursor = this.p.cursor;
		this.post(c, {op: 'open', cursor: c.cursor});
	};

	H.message = function (m) {
		var self = this;

		this.each(function (c) {
			if (c.pending || (c.cursor != null && m.id <= c.cursor))
				return;
			c.cursor = m.id;
			if (c.channels.indexOf(m.channel) >= 0)
				self.post(c, {op: 'msg', m: m});
		});
	};

	/* The stream's channels: exactly the union of the clients'. */
	H.widen = function () {
		var u = [], drop, p = this.p;

		if (!p)
			return;
		this.each(function (c) {
			c.channels.forEach(function (ch) {
				if (u.indexOf(ch) < 0)
					u.push(ch);
			});
		});
		drop = p.channels.filter(function (ch) {
			return u.indexOf(ch) < 0;
		});
		if (drop.length)
			p.unsubscribe(drop);
		p.subscribe(u);
	};

	H.leave = function (id) {
		var self = this;

		if (!this.clients[id])
			return;
		delete this.clients[id];
		for (id in this.clients) {
			this.widen();
			return;
		}
		/* The last page left: end the stream unless one comes soon
		 * (a page that moves on to the next page of the site). */
		clearTimeout(this.idle);
		this.idle = setTimeout(function () {
			for (id in self.clients)
				return;
			if (self.p)
				self.p.close();
			self.p = null;
			self.open = false;
		}, IDLE_CLOSE);
	};

	/* Run as the SharedWorker: every page's port talks to one Hub. */
	if (typeof global.SharedWorkerGlobalScope !== 'undefined' &&
	    global instanceof global.SharedWorkerGlobalScope) {
		var hub = new Hub(function (c, msg) {
			msg.to = c.id;
			try {
				c.port.postMessage(msg);
			} catch (e) {
			}
		});

		global.onconnect = function (e) {
			var port = e.ports[0];

			port.onmessage = function (ev) { hub.handle(ev.data, port); };
			port.start();
			port.postMessage({op: 'ready'});
		};
	}

	Push.publish = function (url, channel, data, opts, done) {
		var q = 'channel=' + encodeURIComponent(channel), h;

		opts = opts || {};
		h = {'Content-Type': opts.type || 'text/plain; charset=utf-8'};
		if (opts.event)
			q += '&event=' + encodeURIComponent(opts.event);
		if (opts.token)
			h.Authorization = 'Bearer ' + opts.token;
		xhr('POST', join(url, q), h, data, 0, function (status, r, text) {
			if (done)
				done(status >= 200 && status < 300 ? null :
				    new Error('publish: HTTP ' + status + ' ' +
				    text.slice(0, 200)), r);
		});
	};

	global.Push = Push;
}(typeof window !== 'undefined' ? window : this));
