// A real third-party Bayeux server (Faye, from npm) on a loopback port.
// PORT (default 0: a free one) lets a test restart it on the same port;
// FAYE_TIMEOUT is Faye's connect hold in seconds (Faye forgets a client
// that has not polled for about 1.6 times that).
// GET /publish?channel=C&n=N&start=S publishes {"n": S..S+N-1} in order,
// through Faye's own in-process client, and answers once they are sent.
// Prints "listening on <url>" once ready; serves until killed.
const http = require('http');
const faye = require('faye');

const bayeux = new faye.NodeAdapter({
  mount: '/bayeux',
  timeout: Number(process.env.FAYE_TIMEOUT || 2),
});
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname !== '/publish') {
    return;
  }
  const channel = url.searchParams.get('channel');
  const n = Number(url.searchParams.get('n') || 1);
  const start = Number(url.searchParams.get('start') || 0);
  let chain = Promise.resolve();
  for (let i = 0; i < n; i++) {
    chain = chain.then(() => bayeux.getClient().publish(channel, { n: start + i }));
  }
  chain.then(
    () => res.end('ok'),
    (err) => { res.statusCode = 500; res.end(String(err)); },
  );
});
bayeux.attach(server);
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  const { port } = server.address();
  console.log(`listening on http://127.0.0.1:${port}/bayeux`);
});
