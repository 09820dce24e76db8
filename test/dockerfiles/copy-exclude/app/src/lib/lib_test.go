libtest
