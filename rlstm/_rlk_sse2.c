/* The sse2 kernels (see _rlk_body.h); setup.py compiles this file with the level's flags. */
#define RL_LEVEL_SSE2 1
#define RL_LEVEL_NAME "sse2"
#define RL_TABLE rl_table_sse2
#include "_rlk_level.h"
