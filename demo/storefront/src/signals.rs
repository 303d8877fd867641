//! Prompt exit on SIGTERM/SIGINT. The standard library has no signal API, but it
//! links the C library anyway, so `signal(2)` is declared here directly (no crates).
//! This matters in a container: as PID 1 a process that has no handler ignores
//! SIGTERM, and `docker stop` would wait for its timeout and then SIGKILL.

#[cfg(unix)]
mod sys {
    use std::os::raw::c_int;

    extern "C" {
        fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
        fn write(fd: c_int, buf: *const u8, count: usize) -> isize;
        fn _exit(status: c_int) -> !;
    }

    const SIGINT: c_int = 2;
    const SIGTERM: c_int = 15;

    extern "C" fn on_signal(_sig: c_int) {
        // Only async-signal-safe calls here.
        const MSG: &[u8] = b"storefront: termination signal received, exiting\n";
        unsafe {
            write(1, MSG.as_ptr(), MSG.len());
            _exit(0);
        }
    }

    pub fn install() {
        unsafe {
            signal(SIGTERM, on_signal);
            signal(SIGINT, on_signal);
        }
    }
}

/// Installs handlers that exit the process (status 0) on SIGTERM and SIGINT.
pub fn install_exit_handlers() {
    #[cfg(unix)]
    sys::install();
}
