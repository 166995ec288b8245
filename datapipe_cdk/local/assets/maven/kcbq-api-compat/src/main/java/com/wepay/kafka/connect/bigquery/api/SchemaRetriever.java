package com.wepay.kafka.connect.bigquery.api;

import java.util.Map;

import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.sink.SinkRecord;

/**
 * The schema-retriever contract kcbq-connector 2.0.0-alpha is compiled against (its kcbq-api jar is not
 * on Maven Central). Types only: the implementations (e.g. IdentitySchemaRetriever) ship in the connector.
 */
public interface SchemaRetriever {
    void configure(Map<String, String> properties);

    Schema retrieveKeySchema(SinkRecord record);

    Schema retrieveValueSchema(SinkRecord record);
}
