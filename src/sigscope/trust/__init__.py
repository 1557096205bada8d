"""Trust decisions and the certificate facts they rest on (pure: no I/O, the clock is a parameter)."""
