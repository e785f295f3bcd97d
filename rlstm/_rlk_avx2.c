/* The avx2 kernels (see _rlk_body.h); setup.py compiles this file with the level's flags. */
#define RL_LEVEL_AVX2 1
#define RL_LEVEL_NAME "avx2"
#define RL_TABLE rl_table_avx2
#include "_rlk_level.h"
