// The usual way to build this in Node, shaped like a NestJS WebSocket gateway: a Socket.IO
// server that authenticates the handshake with a JWT and puts each socket in the room
// `user:<id>`, and a service that LISTENs on a channel fed by a row trigger (one pg_notify
// per row, the row as JSON payload) and emits every notification to the user's room.
// No log, no catch-up: a notification sent while this process is not listening is gone.
//
//   JWT_SECRET=... PGHOST=... PGDATABASE=... node gateway.js [port]
// Prints "listening on 127.0.0.1:<port>" once it is LISTENing and accepting.
'use strict';

const http = require('http');
const { Server } = require('socket.io');
const { Client } = require('pg');
const jwt = require('jsonwebtoken');

const secret = process.env.JWT_SECRET;
if (!secret) {
  console.error('JWT_SECRET is required');
  process.exit(2);
}

// @WebSocketGateway({ transports: ['websocket'] })
class MembershipGateway {
  constructor(server) {
    this.server = server;
    server.use((socket, next) => this.authenticate(socket, next));
    server.on('connection', (socket) => this.handleConnection(socket));
  }

  // What a NestJS guard or handshake middleware does: verify, then remember the user.
  authenticate(socket, next) {
    const token = (socket.handshake.auth && socket.handshake.auth.token) || socket.handshake.query.access_token;
    try {
      const claims = jwt.verify(token, secret, { algorithms: ['HS256'] });
      socket.data.userId = String(claims.sub);
      next();
    } catch (err) {
      next(new Error('unauthorized'));
    }
  }

  handleConnection(socket) {
    socket.join(`user:${socket.data.userId}`);
  }

  emitToUser(userId, event, data) {
    this.server.to(`user:${userId}`).emit(event, data);
  }
}

// @Injectable() class MembershipListener implements OnModuleInit
class MembershipListener {
  constructor(gateway) {
    this.gateway = gateway;
    this.client = new Client();  // PG* environment variables
  }

  async start() {
    this.client.on('notification', (msg) => this.onNotification(msg));
    this.client.on('error', (err) => {
      console.error(`database connection lost: ${err.message}`);
      process.exit(1);
    });
    await this.client.connect();
    await this.client.query('LISTEN channel_members');
  }

  onNotification(msg) {
    let change;
    try {
      change = JSON.parse(msg.payload);
    } catch (err) {
      console.error('unparseable notification');
      return;
    }
    const { op, old: before, new: after, at } = change;
    const event = (row) => ({ channelId: String(row.channel_id), userId: String(row.user_id), xType: null, occurredAt: at });
    if (op === 'DELETE' || (op === 'UPDATE' && (before.channel_id !== after.channel_id || before.user_id !== after.user_id))) {
      this.gateway.emitToUser(before.user_id, 'channel.left', event(before));
    }
    if (op === 'INSERT' || (op === 'UPDATE' && (before.channel_id !== after.channel_id || before.user_id !== after.user_id))) {
      this.gateway.emitToUser(after.user_id, 'channel.joined', event(after));
    }
  }
}

async function main() {
  const port = Number(process.argv[2] || 0);
  const httpServer = http.createServer();
  const io = new Server(httpServer, { transports: ['websocket'], serveClient: false, perMessageDeflate: false });
  const gateway = new MembershipGateway(io);
  await new MembershipListener(gateway).start();
  httpServer.listen(port, '127.0.0.1', () => {
    console.log(`listening on 127.0.0.1:${httpServer.address().port}`);
  });
  for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => {
      io.close();
      process.exit(0);
    });
  }
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
