// A real third-party CometD server (cometd-nodejs-server, from npm, the
// CometD project's own server for Node) on a loopback port.
// PORT (default 0: a free one) lets a test restart it on the same port;
// MAX_INTERVAL (ms) is how long it keeps a session that does not poll.
// Like stock CometD servers it delivers queued events with the reply to
// any request, not only /meta/connect.
// GET /publish?channel=C&n=N&start=S publishes {"n": S..S+N-1} in order.
// Prints "listening on <url>" once ready; serves until killed.
const http = require('http');
const cometd = require('cometd-nodejs-server');

const cometdServer = cometd.createCometDServer({
  timeout: 2000,
  maxInterval: Number(process.env.MAX_INTERVAL || 10000),
});
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname !== '/publish') {
    cometdServer.handle(req, res);
    return;
  }
  const channel = cometdServer.createServerChannel(url.searchParams.get('channel'));
  const n = Number(url.searchParams.get('n') || 1);
  const start = Number(url.searchParams.get('start') || 0);
  for (let i = 0; i < n; i++) {
    channel.publish(null, { n: start + i });
  }
  res.end('ok');
});
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  const { port } = server.address();
  console.log(`listening on http://127.0.0.1:${port}/cometd`);
});
