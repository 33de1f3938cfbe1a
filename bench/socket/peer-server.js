'use strict';

// The comparison server: a Node socket.io 2.x server that authenticates
// sockets with socketio-jwt in its authenticate-event mode, the way many
// socket.io applications do. POST /login returns a JWT for any of the demo
// users; an authenticated socket may send "echo" with an ack. It keeps no
// session state and does no rotation.
//
// Usage: node peer-server.js PORT

const crypto = require('crypto');
const http = require('http');
const jwt = require('jsonwebtoken');
const socketio = require('socket.io');
const socketioJwt = require('socketio-jwt');

const port = Number.parseInt(process.argv[2] || '0', 10);
const secret = crypto.randomBytes(32).toString('hex');
const users = { alice: 'alice-password', bob: 'bob-password' };

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/login') {
    res.writeHead(404).end();
    return;
  }
  let body = '';
  req.on('data', (chunk) => {
    body += chunk;
    if (body.length > 4096) {
      req.destroy();
    }
  });
  req.on('end', () => {
    let credentials;
    try {
      credentials = JSON.parse(body);
    } catch (e) {
      res.writeHead(400, { 'Content-Type': 'application/json' }).end('{"error":"malformed body"}');
      return;
    }
    if (users[credentials.username] !== credentials.password) {
      res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"error":"invalid credentials"}');
      return;
    }
    const token = jwt.sign({ sub: credentials.username }, secret, { expiresIn: '1h' });
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token: token }));
  });
});

const io = socketio(server, { transports: ['websocket'] });
io.sockets.on('connection', socketioJwt.authorize({ secret: secret, timeout: 5000 }));
io.sockets.on('authenticated', (socket) => {
  socket.on('echo', (payload, ack) => {
    if (typeof ack === 'function') {
      ack(JSON.stringify(payload));
    }
  });
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ listening: server.address().port }) + '\n');
});
