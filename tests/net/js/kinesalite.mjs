// kinesalite (npm, in memory) on 127.0.0.1 and a free port, for js_sdk_test.sh. Its own CLI
// listens on every interface; this binds the loopback address only. Prints "PORT <n>" once it
// listens and serves until its standard input closes, as net_test_server does.
// Usage: node kinesalite.mjs
import kinesalite from "kinesalite";

// In memory. CREATING, UPDATING and DELETING last 1 s (kinesalite's default is 500 ms), so that
// the scenario sees them even on a loaded machine.
const server = kinesalite({ createStreamMs: 1000, updateStreamMs: 1000, deleteStreamMs: 1000 });
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`PORT ${server.address().port}\n`);
});
process.stdin.resume();
process.stdin.on("end", () => server.close(() => process.exit(0)));
process.stdin.on("error", () => process.exit(0));
