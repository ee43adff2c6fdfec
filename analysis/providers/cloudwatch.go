package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/smithy-go"
)

// cloudWatchMaxDatapoints bounds the points of one answer.
const cloudWatchMaxDatapoints = 20

// queryCloudWatch runs GetMetricData in spec.provider.region: the query is
// the JSON array of MetricDataQueries of AWS's API (Id, Expression,
// MetricStat, Label, ReturnData, Period), the window is the metric's
// interval ending now, and the value is the first value of the first
// result (CloudWatch answers newest first). Credentials come from AWS's
// default chain (environment, shared files, web identity, the instance's
// role), never from a Secret; spec.provider.address, when set, replaces
// the regional endpoint (a VPC endpoint, say). The API calls go through
// the egress guard; fetching credentials does not.
func queryCloudWatch(ctx context.Context, c *conn, req Request) (float64, error) {
	if c.region == "" {
		return 0, errors.New("no region: set spec.provider.region")
	}
	var queries []types.MetricDataQuery
	if err := json.Unmarshal([]byte(req.Query), &queries); err != nil || len(queries) == 0 {
		return 0, errors.New("query is not a JSON array of MetricDataQueries")
	}
	opts := []func(*config.LoadOptions) error{config.WithRegion(c.region)}
	if c.awsCredentials != nil {
		opts = append(opts, config.WithCredentialsProvider(c.awsCredentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return 0, fmt.Errorf("AWS configuration: %w", err)
	}
	client := cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) {
		o.HTTPClient = c.client
		if c.base != nil {
			o.BaseEndpoint = aws.String(c.base.String())
		}
	})
	end := req.End
	if end.IsZero() {
		end = time.Now()
	}
	out, err := client.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(end.Add(-max(req.Window, time.Second))), EndTime: aws.Time(end),
		MaxDatapoints: aws.Int32(cloudWatchMaxDatapoints), MetricDataQueries: queries,
	})
	if err != nil {
		return 0, describeAWS(err)
	}
	if len(out.MetricDataResults) == 0 || len(out.MetricDataResults[0].Values) == 0 {
		return 0, fmt.Errorf("no values: %w", ErrNoData)
	}
	v := out.MetricDataResults[0].Values[0]
	if v != v {
		return 0, fmt.Errorf("the value is NaN: %w", ErrNoData)
	}
	return v, nil
}

// describeAWS words an SDK error: the API's code and message, a transport
// failure by class, or else the SDK's own words (missing credentials, say).
func describeAWS(err error) error {
	var ae smithy.APIError
	var ue *url.Error
	var ne net.Error
	switch {
	case errors.As(err, &ae):
		return fmt.Errorf("GetMetricData failed: %s: %s", ae.ErrorCode(), truncate(ae.ErrorMessage(), 200))
	case errors.As(err, &ue), errors.As(err, &ne), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("GetMetricData failed: %w", describe(err))
	}
	return fmt.Errorf("GetMetricData failed: %s", truncate(err.Error(), 300))
}
