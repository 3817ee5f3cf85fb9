"""``rtenhance devices``: the audio devices rtenhance can use, with their channels and native rates."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("devices", help="list audio devices (PortAudio, and PulseAudio/PipeWire by name)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rtenhance.audio.io import pulse
    from rtenhance.audio.io.devices import list_devices

    print("PortAudio devices (use the index or a name substring with --input/--output):")
    print(f"  {'idx':>3}  {'in':>3}  {'out':>3}  {'rate':>6}  name")
    for d in list_devices():
        marks = "".join(m for m, on in ((" [default input]", d["default_input"]),
                                        (" [default output]", d["default_output"])) if on)
        print(f"  {d['index']:>3}  {d['inputs']:>3}  {d['outputs']:>3}  {d['rate']:>6}  {d['name']} ({d['hostapi']}){marks}")
    try:
        sources, sinks = pulse.list_devices("sources"), pulse.list_devices("sinks")
    except pulse.PulseError as exc:
        print(f"PulseAudio/PipeWire: not available ({exc})")
        return 0
    for title, devices in (("sources (--input)", sources), ("sinks (--output)", sinks)):
        print(f"PulseAudio/PipeWire {title}:")
        for dev in devices.values():
            print(f"  {dev.channels}ch {dev.rate:>6} Hz  pulse:{dev.name}")
    return 0
