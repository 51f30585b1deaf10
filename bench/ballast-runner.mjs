/**
 * A Drover runner carrying extra resident memory (BENCH_BALLAST_MB, touched so it is really resident), to show
 * what a large runner pays per spawn. Runs the compiled runner, as production does.
 */
const mb = Number(process.env.BENCH_BALLAST_MB ?? 500);
const ballast = [];
for (let i = 0; i < mb; i++) ballast.push(Buffer.alloc(1024 * 1024, i & 0xff));
globalThis.droverBenchBallast = ballast;
const { main } = await import('@drover/runner');
await main(process.env);
