// Preloaded with `node --require tests/servers/loopback.cjs server.js …` so that an HTTP
// server which calls `listen(port)` without a host binds 127.0.0.1 only, and so that a
// test learns the port: once listening, the line `LISTENING <port>` goes to stdout.
// Start such servers with PORT=0 to get a free port.
"use strict";
const net = require("net");
const original = net.Server.prototype.listen;
let announced = false;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number" || (typeof args[0] === "string" && /^\d+$/.test(args[0]))) {
    const port = Number(args[0]);
    const rest = args.slice(1).filter((a) => typeof a === "function" || typeof a === "number");
    args = [port, "127.0.0.1", ...rest];
  }
  this.once("listening", () => {
    if (!announced) {
      announced = true;
      process.stdout.write(`LISTENING ${this.address().port}\n`);
    }
  });
  return original.apply(this, args);
};
