import signal
import sys

# Before anything slow is imported: a SIGHUP (reload) sent while the gateway
# starts must not kill it (its default action); gateway.worker takes it over.
signal.signal(signal.SIGHUP, signal.SIG_IGN)

from gateway.cli import main  # noqa: E402

sys.exit(main())
