// A real third-party Bayeux server (Faye, from npm) on a free loopback port.
// Prints "listening on <url>" once ready; serves until killed.
const http = require('http');
const faye = require('faye');

const bayeux = new faye.NodeAdapter({ mount: '/bayeux', timeout: 2 });
const server = http.createServer();
bayeux.attach(server);
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  console.log(`listening on http://127.0.0.1:${port}/bayeux`);
});
