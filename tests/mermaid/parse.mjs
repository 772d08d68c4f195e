// Checks Mermaid text with Mermaid's own parser, for the test suite (tests/test_mermaid_parser.py).
//
// Protocol: one JSON request per line on stdin, one JSON answer per line on stdout, so that one
// Node process serves a whole test run. The first line written, before any request, is
//   {"ready": true, "mermaid": VERSION, "maxTextSize": N}
// (N: the maxTextSize of Mermaid's default configuration). A request is
//   {"diagrams": [TEXT, ...], "render": false}
// and its answer {"results": [RESULT, ...]}, one per diagram, in order:
//   {"ok": true, "type": DIAGRAM_TYPE}  when mermaid.parse accepts the text,
//   {"ok": false, "error": MESSAGE}     when it throws.
// With "render": true each text also goes through mermaid.render, and RESULT carries
// "tooLarge": whether the SVG drawn is Mermaid's "Maximum text size in diagram exceeded"
// (render enforces maxTextSize; parse does not). A request that is not JSON is answered with
// {"error": MESSAGE}. Nothing else is ever written to stdout: Mermaid's own logging goes to stderr.

import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { JSDOM } from "jsdom";

const TOO_LARGE = "Maximum text size in diagram exceeded";

// Mermaid logs through console; stdout carries the protocol alone.
for (const level of ["log", "info", "warn", "debug", "trace"]) {
    console[level] = (...args) => console.error(...args);
}

// Mermaid's parser runs in Node, but some diagram types (stateDiagram) sanitize their labels
// with DOMPurify while parsing, and DOMPurify needs a window: jsdom provides one. render also
// needs a document, CSSStyleSheet and text measurement, which jsdom does not lay out: the sizes
// below are placeholders, good enough to learn whether render draws the diagram or its
// size-limit message, and used for nothing else.
const { window } = new JSDOM("<!DOCTYPE html><html><body></body></html>", { pretendToBeVisual: true });
globalThis.window = window;
globalThis.document = window.document;
globalThis.CSSStyleSheet = window.CSSStyleSheet;
window.SVGElement.prototype.getBBox = () => ({ x: 0, y: 0, width: 40, height: 16 });
window.SVGElement.prototype.getComputedTextLength = () => 40;

const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false });

const here = new URL(".", import.meta.url);
const version = JSON.parse(readFileSync(new URL("node_modules/mermaid/package.json", here))).version;
const maxTextSize = mermaid.mermaidAPI.getConfig().maxTextSize;

let renders = 0;

async function check(text, render) {
    let result;
    try {
        const parsed = await mermaid.parse(text);
        result = { ok: true, type: parsed.diagramType };
    } catch (error) {
        result = { ok: false, error: String(error?.message ?? error) };
    }
    if (render) {
        try {
            renders += 1;
            const { svg } = await mermaid.render(`check${renders}`, text);
            result.tooLarge = svg.includes(TOO_LARGE);
        } catch (error) {
            result.renderError = String(error?.message ?? error);
        }
    }
    return result;
}

function answer(value) {
    process.stdout.write(JSON.stringify(value) + "\n");
}

answer({ ready: true, mermaid: version, maxTextSize });

for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (!line.trim()) {
        continue;
    }
    let request;
    try {
        request = JSON.parse(line);
        if (!Array.isArray(request.diagrams) || !request.diagrams.every((d) => typeof d === "string")) {
            throw new Error("'diagrams' is not a list of strings");
        }
    } catch (error) {
        answer({ error: `bad request: ${error.message}` });
        continue;
    }
    const results = [];
    for (const text of request.diagrams) {
        results.push(await check(text, request.render === true));
    }
    answer({ results });
}
