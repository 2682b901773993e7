"""Ending a child process a test started, by its PID: SIGTERM (the graceful shutdown every duplex program
and peer server answers), then SIGKILL if it has not exited within the grace period.

The same steps for subprocess.Popen (stop) and asyncio's processes (stop_async); each returns the exit
status, or None when the process had to be killed."""

import asyncio
import subprocess


def stop(process, grace=5.0):
    if process.poll() is not None:
        return process.returncode
    process.terminate()
    try:
        return process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


async def stop_async(process, grace=5.0):
    if process.returncode is not None:
        return process.returncode
    process.terminate()
    try:
        return await asyncio.wait_for(process.wait(), grace)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        return None
