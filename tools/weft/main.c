/* weft: the command-line front end. Every subcommand registers itself (WEFT_COMMAND). */
#include "common/cli-int.h"

int main(int argc, char **argv)
{
    return weft_cli_main(argc, argv);
}
