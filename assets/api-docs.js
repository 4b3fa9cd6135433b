// Rubin's interactive API docs (/api/docs): reads /api/v1/openapi.json, lists every operation with its
// parameters and request body, and sends a request with your key ("Try it"). No third-party code.
(function () {
  "use strict";
  const root = document.getElementById("api-docs");
  const el = (tag, props, ...children) => {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const child of children) node.append(child);
    return node;
  };
  const keyInput = el("input", { type: "password", placeholder: "rk-… (your API key)", id: "api-key", size: 60 });
  keyInput.value = sessionStorage.getItem("rubin_api_key") || "";
  keyInput.addEventListener("change", () => sessionStorage.setItem("rubin_api_key", keyInput.value));
  root.append(el("p", {}, el("label", { htmlFor: "api-key" }, "API key: "), keyInput));

  function example(schema, spec, depth) {
    if (!schema || depth > 4) return null;
    if (schema.$ref) return example(spec.components.schemas[schema.$ref.split("/").pop()], spec, depth + 1);
    if (schema.default !== undefined) return schema.default;
    if (schema.type === "object" || schema.properties) {
      const out = {};
      for (const [name, sub] of Object.entries(schema.properties || {})) out[name] = example(sub, spec, depth + 1);
      return out;
    }
    if (schema.type === "array") return [];
    if (schema.anyOf) return example(schema.anyOf[0], spec, depth + 1);
    return { string: "", integer: 0, number: 0, boolean: false }[schema.type] ?? null;
  }

  function operation(spec, path, method, op) {
    const params = op.parameters || [];
    const inputs = {};
    const form = el("div", { className: "params" });
    for (const p of params) {
      const input = el("input", { name: p.name, placeholder: p.schema && p.schema.default !== undefined ? String(p.schema.default) : "" });
      input.dataset.in = p.in;
      inputs[p.name] = input;
      form.append(el("label", {}, `${p.name} (${p.in}${p.required ? ", required" : ""}) `, input));
    }
    let body = null;
    const content = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
    if (content) {
      body = el("textarea", { rows: 6, cols: 80 });
      body.value = JSON.stringify(example(content.schema, spec, 0), null, 2);
      form.append(el("label", {}, "JSON body", body));
    }
    const output = el("pre", { className: "output" });
    const button = el("button", { type: "button", textContent: "Try it" });
    button.addEventListener("click", async () => {
      let url = "/api/v1" + path;
      const query = new URLSearchParams();
      for (const p of params) {
        const value = inputs[p.name].value;
        if (p.in === "path") url = url.replace(`{${p.name}}`, encodeURIComponent(value));
        else if (value !== "") query.set(p.name, value);
      }
      if ([...query].length) url += "?" + query;
      output.textContent = "…";
      try {
        const response = await fetch(url, {
          method: method.toUpperCase(),
          headers: { Authorization: `Bearer ${keyInput.value}`, "Content-Type": "application/json" },
          body: body ? body.value : undefined,
        });
        const text = await response.text();
        output.textContent = `${response.status} ${response.statusText}\n\n${text}`;
      } catch (error) {
        output.textContent = String(error);
      }
    });
    return el(
      "details",
      { className: "op" },
      el("summary", {}, el("code", { className: "method" }, method.toUpperCase()), " ", el("code", {}, path), " — ", op.summary || ""),
      el("p", {}, op.description || ""),
      form,
      button,
      output,
    );
  }

  fetch("/api/v1/openapi.json")
    .then((r) => r.json())
    .then((spec) => {
      root.append(el("h1", {}, spec.info.title), el("p", {}, spec.info.description || ""));
      for (const [path, methods] of Object.entries(spec.paths)) {
        for (const [method, op] of Object.entries(methods)) root.append(operation(spec, path, method, op));
      }
      root.dataset.ready = "1";
    });
})();
