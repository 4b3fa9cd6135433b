"""Fetch bun (Reflex's JS runtime) from the npm registry into /opt/bun, checked against its published sha512.

Used by the Dockerfile's builder stage only (no node or npm needed there). Environment: BUN_VERSION, BUN_SHA512
(the package's `dist.integrity` without the `sha512-` prefix); a CA bundle at /run/secrets/ca when given.
"""

import base64
import hashlib
import io
import os
import ssl
import sys
import tarfile
import urllib.request

CA = "/run/secrets/ca"
DEST = "/opt/bun"


def main() -> int:
    """Download, verify and unpack the bun binary; exit non-zero with a reason on any mismatch."""
    version, want = os.environ["BUN_VERSION"], os.environ["BUN_SHA512"]
    url = f"https://registry.npmjs.org/@oven/bun-linux-x64/-/bun-linux-x64-{version}.tgz"
    cafile = CA if os.path.isfile(CA) and os.path.getsize(CA) else None
    with urllib.request.urlopen(url, context=ssl.create_default_context(cafile=cafile), timeout=120) as response:
        data = response.read()
    got = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if got != want:
        print(f"bun {version} from {url}: sha512 {got} is not BUN_SHA512 {want}", file=sys.stderr)
        return 1
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        member = archive.getmember("package/bin/bun")
        source = archive.extractfile(member)
        if source is None:
            print("bun archive has no package/bin/bun", file=sys.stderr)
            return 1
        os.makedirs(f"{DEST}/bin", exist_ok=True)
        with open(f"{DEST}/bin/bun", "wb") as target:
            target.write(source.read())
    os.chmod(f"{DEST}/bin/bun", 0o755)
    print(f"bun {version} in {DEST}/bin")
    return 0


if __name__ == "__main__":
    sys.exit(main())
