module.exports = {
  apps: [{
    name: 'hello-node',
    script: 'server.js',
    instances: 4,
    exec_mode: 'cluster',
    port: 3000, // the socket systemd holds; listen(process.env.PORT) is mapped onto it
    wait_ready: true, // each instance counts as started once it calls process.send('ready')
    listen_timeout: 5000,
    kill_timeout: 5000,
    env: { PORT: 3000 },
  }],
};
