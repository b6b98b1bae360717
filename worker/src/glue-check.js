// Build-time only (worker/build.mjs, worker/test/), not part of the Worker bundle.
//
// The import functions, classes, methods and static functions the glue uses that `imports` (the
// object the Worker passes) does not have. The glue names each import once, in a destructuring
// `const { A, B: C } = imports['iface'];`, then calls `A(…)`, `new A(…)`, `A.f(…)`, or a method
// on a resource it rebuilt with `Object.create(A.prototype)` and calls as `rsc0.m(…)`.
export function checkImports(glue, imports) {
  const locals = new Map();
  for (const m of glue.matchAll(/const \{([^}]*)\} = imports\['([^']+)'\];/g)) {
    for (const part of m[1].split(",")) {
      const [name, local = name] = part.split(":").map((p) => p.trim());
      if (name) locals.set(local, { iface: m[2], name, value: imports[m[2]]?.[name] });
    }
  }
  const missing = new Set();
  const need = (ok, what) => {
    if (!ok) missing.add(what);
  };
  for (const { iface, name, value } of locals.values()) {
    need(typeof value === "function", `${iface}#${name}`);
  }
  let resource = null;
  for (const line of glue.split("\n")) {
    const created = /Object\.create\(([\w$]+)\.prototype\)/.exec(line);
    if (created) resource = locals.get(created[1]);
    const method = /rsc0\.([\w$]+)\(/.exec(line);
    if (method && resource) {
      need(typeof resource.value?.prototype?.[method[1]] === "function", `${resource.iface}#${resource.name}.${method[1]}`);
    }
    for (const m of line.matchAll(/(?<![\w$.])([\w$]+)\.([\w$]+)\(/g)) {
      const local = locals.get(m[1]);
      if (local) need(typeof local.value?.[m[2]] === "function", `${local.iface}#${local.name}.${m[2]}`);
    }
  }
  return [...missing];
}
