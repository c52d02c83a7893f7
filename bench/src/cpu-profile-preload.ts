import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { join } from "node:path";

/**
 * A CPU profile of exactly the measured window, for a process we cannot add flags to: Node 20
 * refuses `--cpu-prof` in NODE_OPTIONS, and @orch/testing starts services as `node <entry>`; and
 * `--cpu-prof` would also profile start-up. Loaded with `NODE_OPTIONS=--import <this file>` and
 * $BENCH_CPU_PROF_DIR set, the first SIGUSR2 starts V8's sampling profiler (1 ms), the second stops it
 * and writes `<pid>.cpuprofile` there (also written at exit if still running; the in-thread
 * inspector session answers synchronously, so that works inside an `exit` handler).
 */
const dir = process.env.BENCH_CPU_PROF_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.setSamplingInterval", { interval: 1000 });
  let running = false;
  const stop = () => {
    running = false;
    session.post("Profiler.stop", (err, res) => {
      if (!err) writeFileSync(join(dir, `${process.pid}.cpuprofile`), JSON.stringify(res.profile));
    });
  };
  process.on("SIGUSR2", () => {
    if (running) return stop();
    running = true;
    session.post("Profiler.start");
  });
  process.on("exit", () => {
    if (running) stop();
  });
}
