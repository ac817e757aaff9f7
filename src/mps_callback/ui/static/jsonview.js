// A small JSON tree for the redacted notification bodies: expand/collapse, and a search box that
// highlights matching keys and values and expands their parents. Plain DOM: every piece of data is
// set with textContent, never as HTML (the bodies are hostile text).
//
// A body can be megabytes: the page carries only a link per notification (<details data-src>);
// the body is fetched when its <details> first opens, and a node's children are built only when
// it is expanded. Search walks the parsed value, not the DOM, and expands along at most
// MAX_MATCHES matches; "expand all" opens at most MAX_EXPANDED nodes.
"use strict";

const JsonView = (() => {
  const CHILDREN_SHOWN_OPEN = 2; // depth opened at first
  const MAX_MATCHES = 500;
  const MAX_EXPANDED = 2000;
  const values = new WeakMap(); // <li> of an object or array -> its value (children built on expand)

  function leaf(value) {
    const span = document.createElement("span");
    const type = value === null ? "null" : typeof value;
    span.className = "value " + type;
    span.textContent = type === "string" ? JSON.stringify(value) : String(value);
    return span;
  }

  function entriesOf(value) {
    return Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  }

  function node(key, value, depth) {
    const item = document.createElement("li");
    if (key !== null) {
      const name = document.createElement("span");
      name.className = "key";
      name.textContent = JSON.stringify(key);
      item.append(name, document.createTextNode(": "));
    }
    if (value === null || typeof value !== "object") {
      item.append(leaf(value));
      return item;
    }
    const count = Array.isArray(value) ? value.length : Object.keys(value).length;
    const toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "toggle";
    toggle.setAttribute("aria-label", "expand or collapse");
    const hint = document.createElement("span");
    hint.className = "hint";
    hint.textContent = Array.isArray(value) ? `[${count}]` : `{${count}}`;
    item.prepend(toggle);
    item.append(hint);
    item.dataset.depth = String(depth);
    values.set(item, value);
    setCollapsed(item, depth >= CHILDREN_SHOWN_OPEN && count > 0);
    return item;
  }

  // The <ul> of an object's or array's children, built the first time it is wanted.
  function children(item) {
    let list = item.querySelector(":scope > ul");
    if (list) return list;
    const value = values.get(item);
    list = document.createElement("ul");
    const depth = Number(item.dataset.depth);
    for (const [childKey, childValue] of entriesOf(value)) {
      list.append(node(Array.isArray(value) ? null : childKey, childValue, depth + 1));
    }
    item.append(list);
    return list;
  }

  function setCollapsed(item, collapsed) {
    if (!collapsed && values.has(item)) children(item);
    item.classList.toggle("collapsed", collapsed);
    const toggle = item.querySelector(":scope > .toggle");
    if (toggle) {
      toggle.textContent = collapsed ? "▸" : "▾";
      toggle.setAttribute("aria-expanded", String(!collapsed));
    }
  }

  // Where the needle is in the value: [index path, "key" or "value"], at most MAX_MATCHES of them.
  function matches(value, needle) {
    const found = [];
    const walk = (current, path) => {
      for (const [index, [childKey, childValue]] of entriesOf(current).entries()) {
        if (found.length >= MAX_MATCHES) return;
        const here = path.concat(index);
        if (typeof childKey === "string" && JSON.stringify(childKey).toLowerCase().includes(needle)) {
          found.push([here, "key"]);
        }
        if (childValue !== null && typeof childValue === "object") {
          walk(childValue, here);
        } else if (found.length < MAX_MATCHES && leaf(childValue).textContent.toLowerCase().includes(needle)) {
          found.push([here, "value"]);
        }
      }
    };
    if (value !== null && typeof value === "object") walk(value, []);
    else if (leaf(value).textContent.toLowerCase().includes(needle)) found.push([[], "value"]);
    return found;
  }

  // The <li> at an index path from the root, expanding (and so building) each parent on the way.
  function reveal(rootItem, path) {
    let item = rootItem;
    for (const index of path) {
      setCollapsed(item, false);
      item = children(item).children[index];
    }
    return item;
  }

  function search(tree, query, counter) {
    for (const old of tree.querySelectorAll(".match")) old.classList.remove("match");
    const needle = query.trim().toLowerCase();
    if (!needle) {
      counter.textContent = "";
      return 0;
    }
    const rootItem = tree.querySelector(":scope > ul > li");
    const found = matches(tree.jsonValue, needle);
    for (const [path, where] of found) {
      const span = reveal(rootItem, path).querySelector(`:scope > .${where}`);
      if (span) span.classList.add("match");
    }
    const words = found.length === 1 ? "1 match" : `${found.length} matches`;
    counter.textContent = found.length >= MAX_MATCHES ? `first ${MAX_MATCHES} matches shown` : words;
    const first = tree.querySelector(".match");
    if (first) first.scrollIntoView({ block: "nearest" });
    return found.length;
  }

  function expandAll(tree, counter) {
    let opened = 0;
    const queue = [...tree.querySelectorAll("li")].filter((item) => values.has(item));
    while (queue.length) {
      const item = queue.shift();
      if (item.classList.contains("collapsed")) {
        if (opened >= MAX_EXPANDED) {
          counter.textContent = `expanded the first ${MAX_EXPANDED} nodes; search to reach the rest`;
          return;
        }
        setCollapsed(item, false);
        opened += 1;
      }
      for (const child of children(item).children) if (values.has(child)) queue.push(child);
    }
  }

  // The tree and its search box for a parsed body, after the <details>' link (kept for no-JS readers).
  function build(details, value) {
    const box = document.createElement("div");
    box.className = "jsontree-box";
    const bar = document.createElement("div");
    bar.className = "jsontree-search";
    const input = document.createElement("input");
    input.type = "search";
    input.placeholder = "search keys and values";
    input.setAttribute("aria-label", "search the JSON");
    const counter = document.createElement("span");
    counter.className = "muted matches";
    const expand = document.createElement("button");
    expand.type = "button";
    expand.textContent = "expand all";
    bar.append(input, counter, expand);
    const tree = document.createElement("div");
    tree.className = "jsontree";
    tree.jsonValue = value;
    const root = document.createElement("ul");
    root.append(node(null, value, 0));
    tree.append(root);
    tree.addEventListener("click", (event) => {
      const toggle = event.target.closest(".toggle");
      if (toggle) setCollapsed(toggle.parentElement, !toggle.parentElement.classList.contains("collapsed"));
    });
    expand.addEventListener("click", () => expandAll(tree, counter));
    let timer = 0;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => search(tree, input.value, counter), 120);
    });
    box.append(bar, tree);
    details.append(box);
  }

  function failed(details, text) {
    const note = document.createElement("p");
    note.className = "error";
    note.textContent = text;
    details.append(note);
  }

  // Fetch and build a body's tree the first time its <details> opens: a page of bodies costs nothing until read.
  async function upgrade(details) {
    details.dataset.loaded = "1";
    let answer;
    try {
      answer = await fetch(details.dataset.src, { credentials: "same-origin", headers: { Accept: "application/json" } });
    } catch (error) {
      failed(details, "could not fetch the JSON: " + error);
      return;
    }
    if (!answer.ok) {
      failed(details, `could not fetch the JSON: HTTP ${answer.status}`);
      return;
    }
    build(details, await answer.json());
  }

  function init(root) {
    for (const details of root.querySelectorAll("details.json[data-src]")) {
      details.addEventListener("toggle", () => {
        if (details.open && !details.dataset.loaded) upgrade(details);
      });
    }
  }

  return { init, upgrade, search };
})();

document.addEventListener("DOMContentLoaded", () => JsonView.init(document));
