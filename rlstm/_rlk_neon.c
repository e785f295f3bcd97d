/* The neon kernels (see _rlk_body.h); setup.py compiles this file with the level's flags. */
#define RL_LEVEL_NEON 1
#define RL_LEVEL_NAME "neon"
#define RL_TABLE rl_table_neon
#include "_rlk_level.h"
