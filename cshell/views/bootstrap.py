"""What `image bootstrap` reports: the image, and where its root filesystem came from."""

from __future__ import annotations

from cshell.engine.image.bootstrap import Bootstrapped


def bootstrap_summary(result: Bootstrapped) -> str:
    image = result.image
    if result.already:
        return f"{result.ref} is already here ({image.short_id}); --force builds it again"
    if result.cached:
        origin = f"from the cached root filesystem {result.cache_path}"
    elif result.recipe.slow:
        origin = f"from {result.packages} Debian packages (cached in {result.cache_path})"
    else:
        origin = "from busybox-static"
    return f"Built {result.ref} {image.short_id} {origin} in {result.seconds:.1f}s"
