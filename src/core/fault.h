/* fault.h: fault injection for the reliability tests (docs/reliability.md).
 *
 * BTRM_FAULT="POINT[,rank=R][,step=S][,hit=N][,action=A]" makes rank R
 * (default 0) act the N-th time (default 1) it passes the named point, with
 * step=S counting only the passes at training step S (points that know the
 * step: `step`); a resumed run that starts past S never acts:
 *   action=kill   SIGKILL itself (the default): a node or rank lost mid-way;
 *   action=term   raise SIGTERM;  action=usr1  raise SIGUSR1;
 *   action=term-twice, usr1-twice  the same signal twice in a row;
 *   action=wait   wait there (at most 120 s) until a stop signal (SIGUSR1,
 *                 SIGTERM, SIGINT) reaches the process: a test that signals
 *                 a running job waits for this line, then signals, and the
 *                 run cannot end first however loaded the machine is.
 * The points:
 *   ckpt-midway   a checkpoint write, after the model tensors, before the
 *                 optimizer moments (between two collective phases);
 *   ckpt-write    each collective dataset write of a checkpoint, just before
 *                 H5Dwrite (so the other ranks are inside the collective);
 *   grad-reduce   each training step, just before the collective over the
 *                 gradient (the others are inside it);
 *   step          the start of each training step (hit=1: before the first).
 * Unset: nothing happens (one getenv at the first call). Never set outside
 * tests. */
#ifndef BTRM_FAULT_H
#define BTRM_FAULT_H

#define BTRM_FAULT_ENV "BTRM_FAULT"

void btrm_fault_point(const char *point, int rank);
/* The same at a point that knows the training step (step=S matches it). */
void btrm_fault_point_at(const char *point, int rank, long step);

#endif
