/* MPI_Allreduce of float32 sums, in place, timed like bench/allreduce's
 * other runners: for each size, warm-up iterations, a barrier, timed
 * iterations; the average time per iteration, the maximum over ranks,
 * printed by rank 0 as "SIZE_BYTES ITERS SECONDS".
 *
 * usage: mpi_allreduce MIN_BYTES MAX_BYTES FACTOR TARGET_BYTES MIN_ITERS MAX_ITERS */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
	MPI_Init(&argc, &argv);
	if (argc != 7) {
		fprintf(stderr, "usage: %s MIN_BYTES MAX_BYTES FACTOR TARGET_BYTES MIN_ITERS MAX_ITERS\n", argv[0]);
		MPI_Abort(MPI_COMM_WORLD, 2);
	}
	long minb = atol(argv[1]), maxb = atol(argv[2]), factor = atol(argv[3]);
	long target = atol(argv[4]), mini = atol(argv[5]), maxi = atol(argv[6]);
	int rank;
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	float *buf = calloc(maxb / 4, sizeof(float));
	if (!buf) {
		fprintf(stderr, "out of memory\n");
		MPI_Abort(MPI_COMM_WORLD, 1);
	}
	for (long size = minb; size <= maxb; size *= factor) {
		int count = (int)(size / 4);
		long iters = target / size;
		if (iters < mini) iters = mini;
		if (iters > maxi) iters = maxi;
		long warm = iters / 10 < 2 ? 2 : iters / 10;
		for (long i = 0; i < warm; i++)
			MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
		MPI_Barrier(MPI_COMM_WORLD);
		double t0 = MPI_Wtime();
		for (long i = 0; i < iters; i++)
			MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
		double avg = (MPI_Wtime() - t0) / iters, worst;
		MPI_Reduce(&avg, &worst, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
		if (rank == 0) {
			printf("%ld %ld %.9f\n", size, iters, worst);
			fflush(stdout);
		}
	}
	free(buf);
	MPI_Finalize();
	return 0;
}
