"""The test images: a Debian image with every kind of package database, an Alpine one."""

from tests.scanning.conftest import (
    apk_installed,
    dpkg_status,
    layer,
    npm_package,
    os_release,
    python_metadata,
    rpmdb_sqlite,
)

BASE_DPKG = [
    ("libssl3", "3.0.11-1~deb12u1", "openssl"),
    ("zlib1g", "1:1.2.13.dfsg-1", "zlib"),
    ("bash", "5.2.15-2+b2", "bash (5.2.15-2)"),
]


def debian_layers():
    """Three layers: a gzip base (Debian 12, three dpkg packages), a zstd layer adding curl and
    Python and npm packages, a plain tar layer with an rpm database and a whiteout."""
    base = layer(
        {
            "usr/lib/os-release": os_release("debian", "12", "Debian GNU/Linux 12 (bookworm)"),
            "var/lib/dpkg/status": dpkg_status(*BASE_DPKG),
            "./usr/bin/bash": b"\x7fELF not really",
        },
        symlinks={"etc/os-release": "../usr/lib/os-release"},
    )
    app = layer(
        {
            "var/lib/dpkg/status": dpkg_status(*BASE_DPKG, ("curl", "7.88.1-10+deb12u4")),
            "usr/lib/python3/dist-packages/requests-2.28.1.dist-info/METADATA": python_metadata("Requests", "2.28.1"),
            "usr/lib/python3/site-packages/six-1.16.0.egg-info/PKG-INFO": python_metadata("six", "1.16.0"),
            "app/node_modules/lodash/package.json": npm_package("lodash", "4.17.20"),
            # Inside a package, not a package: ignored.
            "app/node_modules/lodash/test/fixture/package.json": npm_package("fixture", "0.0.1"),
            "app/node_modules/@scope/pkg/package.json": npm_package("@scope/pkg", "1.0.0"),
        },
        compression="zstd",
    )
    top = layer(
        {
            "var/lib/rpm/rpmdb.sqlite": rpmdb_sqlite(
                ("tzdata", "2024a", "1.el9", None, "tzdata-2024a-1.el9.src.rpm"),
                ("openssl-libs", "3.0.7", "25.el9", 1, "openssl-3.0.7-25.el9.src.rpm"),
                ("gpg-pubkey", "fd431d51", "4ae0493b", None, ""),
            ),
        },
        whiteouts=["app/node_modules/.wh.@scope"],
        compression="none",
    )
    return [base, app, top]


def alpine_layers():
    return [
        layer(
            {
                "etc/os-release": os_release("alpine", "3.19.1", "Alpine Linux v3.19"),
                "lib/apk/db/installed": apk_installed(
                    ("musl", "1.2.4_git20230717-r4", "musl"),
                    ("libcrypto3", "3.1.4-r1", "openssl"),
                    ("libssl3", "3.1.4-r1", "openssl"),
                ),
            }
        )
    ]
