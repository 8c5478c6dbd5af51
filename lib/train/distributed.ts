/**
 * Data-parallel training across processes: the torchrun-compatible environment a worker reads, and the
 * launcher (`cxr-train train --nproc N`) that starts the workers of one machine, forwards signals and
 * stops the others when one dies.
 *
 * The worker side (process group, global-batch loss, gradient all-reduce) is native (cxr::Distributed);
 * the Trainer joins it when this environment says so.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import { CxrError } from '../errors';

/** A worker's place in the job, from the environment torchrun (or `--nproc`) sets. */
export interface DistEnv {
  /** Global rank, 0 ... worldSize-1. Rank 0 writes checkpoints, logs and the final model. */
  rank: number;
  worldSize: number;
  /** Rank on this machine (selects the GPU `cuda:LOCAL_RANK`). */
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  /** GLOO_SOCKET_IFNAME, for Gloo on machines with several interfaces. */
  ifname: string;
}

function envInt(env: NodeJS.ProcessEnv, key: string, min: number, def?: number): number {
  const v = env[key];
  if (v === undefined || v === '') {
    if (def !== undefined) return def;
    throw new CxrError('E_CONFIG', `distributed run: ${key} is not set (WORLD_SIZE is; set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT as torchrun does)`);
  }
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new CxrError('E_CONFIG', `distributed run: ${key} must be an integer >= ${min}, got "${v}"`);
  return n;
}

/**
 * Reads torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT).
 * Returns null for a single-process run (WORLD_SIZE unset or 1).
 */
export function distributedEnv(env: NodeJS.ProcessEnv = process.env): DistEnv | null {
  if (env.WORLD_SIZE === undefined || env.WORLD_SIZE === '' || env.WORLD_SIZE === '1') return null;
  const worldSize = envInt(env, 'WORLD_SIZE', 2);
  const rank = envInt(env, 'RANK', 0);
  if (rank >= worldSize) throw new CxrError('E_CONFIG', `distributed run: RANK ${rank} is not below WORLD_SIZE ${worldSize}`);
  const localRank = envInt(env, 'LOCAL_RANK', 0, rank);
  const localWorldSize = envInt(env, 'LOCAL_WORLD_SIZE', 1, worldSize);
  const masterAddr = env.MASTER_ADDR;
  if (!masterAddr) throw new CxrError('E_CONFIG', 'distributed run: MASTER_ADDR is not set (the address of rank 0)');
  const masterPort = envInt(env, 'MASTER_PORT', 1);
  if (masterPort > 65535) throw new CxrError('E_CONFIG', `distributed run: MASTER_PORT must be <= 65535, got ${masterPort}`);
  return { rank, worldSize, localRank, localWorldSize, masterAddr, masterPort, ifname: env.GLOO_SOCKET_IFNAME ?? '' };
}

/** A TCP port that was free a moment ago (for a single-machine job's rendezvous). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Options of {@link launchWorkers}. */
export interface LaunchOptions {
  /** Workers on this machine. */
  nproc: number;
  /** Machines in the job. Default 1. */
  nnodes?: number;
  /** This machine's index, 0 ... nnodes-1 (node 0 hosts rank 0 and the rendezvous). Default 0. */
  nodeRank?: number;
  /** Rank 0's address and port; default 127.0.0.1 and a free port (single machine only). */
  masterAddr?: string;
  masterPort?: number;
  /** The command of every worker: `node <args...>` (e.g. the CLI script and its arguments). */
  args: string[];
  /** Extra environment for the workers. */
  env?: NodeJS.ProcessEnv;
  /** Seconds between SIGTERM and SIGKILL when stopping the other workers. Default 15. */
  graceSec?: number;
  /** Where the launcher's own lines go. Default process.stderr. */
  log?: (line: string) => void;
}

/** How a launched job ended. */
export interface LaunchResult {
  /** 0 when every worker exited 0. */
  code: number;
  /** The first worker that failed (null when none did). */
  failed: { rank: number; pid: number; code: number | null; signal: NodeJS.Signals | null } | null;
}

/**
 * Starts `nproc` workers with torchrun's environment, rank 0's output passed through and the others'
 * error output prefixed with their rank. Signals (SIGINT, SIGTERM) are forwarded to every worker so
 * they stop together at the same step (a checkpoint is written); a second one kills them. When one
 * worker fails, the others are told to stop (SIGTERM, then SIGKILL after `graceSec`) and the launcher
 * reports which rank it was.
 */
export async function launchWorkers(o: LaunchOptions): Promise<LaunchResult> {
  const nnodes = o.nnodes ?? 1;
  const nodeRank = o.nodeRank ?? 0;
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  if (!Number.isInteger(o.nproc) || o.nproc < 1) throw new CxrError('E_CONFIG', `--nproc must be a positive integer, got ${o.nproc}`);
  if (!Number.isInteger(nnodes) || nnodes < 1) throw new CxrError('E_CONFIG', `--nnodes must be a positive integer, got ${nnodes}`);
  if (!Number.isInteger(nodeRank) || nodeRank < 0 || nodeRank >= nnodes) throw new CxrError('E_CONFIG', `--node-rank must be in 0..${nnodes - 1}, got ${nodeRank}`);
  if (nnodes > 1 && (!o.masterAddr || !o.masterPort)) throw new CxrError('E_CONFIG', 'several machines need --master ADDR:PORT (the address of node 0, the same on every node)');
  const masterAddr = o.masterAddr ?? '127.0.0.1';
  const masterPort = o.masterPort ?? (await freePort());
  const worldSize = nnodes * o.nproc;
  // Split the cores between local workers unless threads were chosen (oversubscription is much slower).
  const cores = Math.max(1, Math.floor(os.cpus().length / o.nproc));
  const children: Array<{ rank: number; child: ChildProcess; done: boolean }> = [];
  let failed: LaunchResult['failed'] = null;
  let stopping = false;
  let killTimer: NodeJS.Timeout | null = null;

  const stopOthers = (sig: NodeJS.Signals) => {
    for (const c of children) if (!c.done) c.child.kill(sig);
  };
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) {
      log(`cxr-train: ${sig} again: killing the workers`);
      stopOthers('SIGKILL');
      return;
    }
    stopping = true;
    stopOthers(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const exits: Promise<void>[] = [];
  for (let local = 0; local < o.nproc; local++) {
    const rank = nodeRank * o.nproc + local;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...o.env,
      RANK: String(rank),
      WORLD_SIZE: String(worldSize),
      LOCAL_RANK: String(local),
      LOCAL_WORLD_SIZE: String(o.nproc),
      GROUP_RANK: String(nodeRank),
      MASTER_ADDR: masterAddr,
      MASTER_PORT: String(masterPort),
    };
    if (!env.CXR_THREADS) env.CXR_THREADS = String(cores);
    const child = spawn(process.execPath, o.args, { env, stdio: ['ignore', rank === 0 ? 'inherit' : 'ignore', rank === 0 ? 'inherit' : 'pipe'] });
    const entry = { rank, child, done: false };
    children.push(entry);
    log(`cxr-train: worker rank ${rank} of ${worldSize} started (pid ${child.pid})`);
    if (child.stderr) {
      let buf = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (d: string) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          log(`[rank ${rank}] ${buf.slice(0, i)}`);
          buf = buf.slice(i + 1);
        }
      });
      child.stderr.on('end', () => buf && log(`[rank ${rank}] ${buf}`));
    }
    exits.push(
      new Promise<void>((resolve) => {
        const finish = (code: number | null, signal: NodeJS.Signals | null) => {
          if (entry.done) return;
          entry.done = true;
          if ((code !== 0 || signal) && !failed) {
            failed = { rank, pid: child.pid ?? -1, code, signal };
            if (!stopping || signal === 'SIGKILL') {
              log(`cxr-train: worker rank ${rank} (pid ${child.pid}) ${signal ? `was killed by ${signal}` : `exited with code ${code}`}; stopping the other workers`);
            }
            stopping = true;
            stopOthers('SIGTERM');
            killTimer = setTimeout(() => stopOthers('SIGKILL'), 1000 * (o.graceSec ?? 15));
            killTimer.unref();
          }
          resolve();
        };
        child.on('exit', finish);
        child.on('error', (e) => {
          log(`cxr-train: worker rank ${rank} could not start: ${e.message}`);
          finish(1, null);
        });
      }),
    );
  }
  await Promise.all(exits);
  if (killTimer) clearTimeout(killTimer);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  const f = failed as LaunchResult['failed'];
  return { code: f ? (f.code && f.code > 0 ? f.code : 1) : 0, failed: f };
}
