// A WASI 0.2 command in JavaScript for componentize-qjs (world `qjs-hello` of ../wit/p2):
// greets and reports its arguments. Built with the tool's default runtime, so `run` is
// lifted with the component-model async ABI even though the world is 0.2.
import environment from "wasi:cli/environment@0.2.12";
import stdout from "wasi:cli/stdout@0.2.12";

// QuickJS has no TextEncoder: UTF-8 by hand.
function utf8(text) {
    const bytes = [];
    for (const c of unescape(encodeURIComponent(text))) bytes.push(c.charCodeAt(0));
    return new Uint8Array(bytes);
}

export const run = {
    run() {
        const args = environment.getArguments().slice(1);
        stdout.getStdout().blockingWriteAndFlush(utf8(`Hello from QuickJS! args: ${JSON.stringify(args)}\n`));
    },
};
