package sandbox

// pid1Script keeps the sandbox alive between execs. A shell waiting on a
// child handles SIGTERM; a bare `sleep infinity` as PID 1 would ignore it
// (the kernel drops default-action signals to a namespace's init) and every
// delete would wait out the whole grace period.
const pid1Script = `trap 'exit 0' TERM INT HUP; while :; do sleep 86400 & wait $!; done`
