// The npm bittorrent-tracker server, WebSocket only, for bench/tracker.sh: the package pinned in
// tracker/interop (npm ci there). Listens on 127.0.0.1 at an OS-chosen port and prints
// "bittorrent-tracker listening on 127.0.0.1:PORT"; stops on SIGTERM.

const { Server } = await import(new URL("../tracker/interop/node_modules/bittorrent-tracker/index.js", import.meta.url).href);
const server = new Server({ udp: false, http: false, ws: true, stats: false, trustProxy: false });
server.on("error", (e) => { console.error(`bittorrent-tracker: ${e.message}`); process.exit(1); });
server.on("warning", () => {});
server.listen(0, "127.0.0.1", () => {
  const { port } = server.http.address();
  console.log(`bittorrent-tracker listening on 127.0.0.1:${port}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
