// An ordinary Node http server: nothing here knows about systemd or fd 3.
const http = require('http');

const server = http.createServer((req, res) => {
  res.end(`hello from pid ${process.pid}\n`);
});

server.listen(process.env.PORT, () => {
  // PM2's wait_ready signal; under pmsd it becomes sd_notify READY=1.
  if (process.send) process.send('ready');
});

// pmsd stops apps with SIGINT, as PM2 does: stop accepting, finish what is in flight, exit.
process.on('SIGINT', () => server.close(() => process.exit(0)));
