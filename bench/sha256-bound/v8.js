// Times hash_rounds in V8's WebAssembly (TurboFan, as Envoy runs it: Liftoff off).
const fs = require("fs");
const module_ = new WebAssembly.Module(fs.readFileSync(process.argv[2]));
const imports = {};
for (const i of WebAssembly.Module.imports(module_)) {
  (imports[i.module] ||= {})[i.name] = () => 0;
}
const instance = new WebAssembly.Instance(module_, imports);
const rounds = 400;
instance.exports.hash_rounds(50);
const started = process.hrtime.bigint();
const fold = instance.exports.hash_rounds(rounds);
const micros = Number(process.hrtime.bigint() - started) / 1e3 / rounds;
console.log(`${micros.toFixed(0)} µs per 256 KiB (${(262144 / micros).toFixed(0)} MB/s) [${fold}]`);
