package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/transfer"
)

func newDataCleanupCmd(o *rootOptions) *cobra.Command {
	var olderThan time.Duration
	var dryRun bool
	var s3 s3Flags
	cmd := &cobra.Command{
		Use:   "cleanup S3-LOCATION",
		Short: "Abort the unfinished multipart uploads under an S3 location (what killed uploads leave)",
		Long: `Aborts the multipart uploads under an S3 location that were begun more than --older-than
ago and never completed: a client killed while uploading a large file (hpcml, awscli, rclone
or any other) leaves its parts stored, and billed, in no object. Younger uploads may still be
running and are kept. Finished objects are never touched.`,
		Example: `  hpcml data cleanup 's3://ml/datasets/?endpoint=http://127.0.0.1:7070&region=us-east-1&use_path_style=true' --dry-run
  hpcml data cleanup s3://ml/ --older-than 1h`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			if olderThan < 0 {
				return fmt.Errorf("--older-than %v is negative", olderThan)
			}
			ep, err := s3.parse(args[0])
			if err != nil {
				return err
			}
			ups, err := transfer.CleanupUploads(cmd.Context(), ep, olderThan, dryRun)
			if format != formatTable {
				if ups == nil {
					ups = []transfer.Incomplete{}
				}
				if perr := printDoc(cmd.OutOrStdout(), format, ups); perr != nil {
					return perr
				}
				return err
			}
			tw := newTable(cmd.OutOrStdout())
			if len(ups) > 0 {
				fmt.Fprintln(tw, "INITIATED\tKEY\tUPLOAD ID\tACTION")
			}
			for _, u := range ups {
				action := "aborted"
				if !u.Aborted {
					action = "would abort"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Initiated.Local().Format(time.DateTime), u.Key, u.UploadID, action)
			}
			tw.Flush()
			if err != nil {
				return err
			}
			verb := "aborted"
			if dryRun {
				verb = "would abort"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %d unfinished upload(s) begun before %s\n", verb, len(ups),
				time.Now().Add(-olderThan).Local().Format(time.DateTime))
			return nil
		},
	}
	cmd.Flags().DurationVar(&olderThan, "older-than", 24*time.Hour, "abort only uploads begun longer ago than this (younger ones may be running)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be aborted; abort nothing")
	s3.add(cmd.Flags())
	return cmd
}
